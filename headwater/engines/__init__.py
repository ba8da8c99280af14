"""Engines: batch (DuckDB) today; Spark and streaming slot in beside it."""
