"""The registry (metadata store): definitions and their versions, view schemas, runs,
checkpoints, a sequence counter, data-quality results, fitted transform statistics and the
physical versions of the views' offline tables.

Two backends share one SQL layer: a local SQLite file (the default,
:class:`SqliteRegistryConfig`) and a PostgreSQL schema shared by a team
(:class:`PostgresRegistryConfig`). Timestamps are stored in UTC (``TIMESTAMPTZ`` in PostgreSQL,
fixed-width ISO-8601 text in SQLite).
"""

from headwater.stores.registry._checks import CheckRecord
from headwater.stores.registry._fitted import FittedStatistics
from headwater.stores.registry._records import (
    ApplyDiff,
    DefinitionRecord,
    RunRecord,
    StreamPartition,
)
from headwater.stores.registry._registry import (
    FINAL_STATUSES,
    RUN_KINDS,
    SCHEMA_VERSION,
    STATUSES,
    Registry,
)
from headwater.stores.registry._runs import HEARTBEAT_S, LEASE_S
from headwater.stores.registry._sql import Db, PostgresRegistryConfig, SqliteRegistryConfig
from headwater.stores.registry._versions import TableVersion, VersionChange, table_name

__all__ = [
    "FINAL_STATUSES",
    "HEARTBEAT_S",
    "LEASE_S",
    "RUN_KINDS",
    "SCHEMA_VERSION",
    "STATUSES",
    "ApplyDiff",
    "CheckRecord",
    "Db",
    "DefinitionRecord",
    "FittedStatistics",
    "PostgresRegistryConfig",
    "Registry",
    "RunRecord",
    "SqliteRegistryConfig",
    "StreamPartition",
    "TableVersion",
    "VersionChange",
    "table_name",
]
