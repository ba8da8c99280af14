"""The registry (metadata store): definitions and their versions, view schemas, runs,
checkpoints and a sequence counter.

Two backends share one SQL layer: a local SQLite file (the default) and a PostgreSQL schema
shared by a team. Timestamps are stored in UTC (``TIMESTAMPTZ`` in PostgreSQL, fixed-width
ISO-8601 text in SQLite).
"""

from headwater.stores.registry._records import ApplyDiff, DefinitionRecord, RunRecord
from headwater.stores.registry._registry import (
    FINAL_STATUSES,
    RUN_KINDS,
    SCHEMA_VERSION,
    Registry,
)

__all__ = [
    "FINAL_STATUSES",
    "RUN_KINDS",
    "SCHEMA_VERSION",
    "ApplyDiff",
    "DefinitionRecord",
    "Registry",
    "RunRecord",
]
