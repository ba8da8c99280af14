"""headwater: feature-engineering data pipelines.

Declare entities, sources and feature views once; compute them in batch with DuckDB, keep
history in Delta Lake and the latest values in SQLite or Redis, and serve them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater import checks, transforms
from headwater.definitions import (
    Avg,
    Count,
    CountDistinct,
    Entity,
    FeatureView,
    FileSource,
    Hopping,
    KafkaSource,
    Last,
    Max,
    Min,
    PostgresSink,
    PostgresSource,
    RedshiftSink,
    RedshiftSource,
    SqliteSource,
    Sum,
    Tumbling,
)

if TYPE_CHECKING:
    from headwater.feature_store import FeatureStore

__version__ = "0.1.0"

__all__ = [
    "Avg",
    "Count",
    "CountDistinct",
    "Entity",
    "FeatureStore",
    "FeatureView",
    "FileSource",
    "Hopping",
    "KafkaSource",
    "Last",
    "Max",
    "Min",
    "PostgresSink",
    "PostgresSource",
    "RedshiftSink",
    "RedshiftSource",
    "SqliteSource",
    "Sum",
    "Tumbling",
    "__version__",
    "checks",
    "transforms",
]


def __getattr__(name: str) -> Any:
    # FeatureStore pulls in config parsing; keep `import headwater` light for the CLI.
    if name == "FeatureStore":
        from headwater.feature_store import FeatureStore

        return FeatureStore
    raise AttributeError(f"module 'headwater' has no attribute {name!r}")
