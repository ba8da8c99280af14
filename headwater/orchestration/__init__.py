"""Orchestration: run views in order, materialize, checkpoints and retries."""
