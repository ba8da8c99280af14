"""Stores: offline (history), online (latest values) and the registry (metadata)."""
