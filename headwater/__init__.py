"""headwater: feature-engineering data pipelines.

Declare entities, sources and feature views once; compute them in batch with DuckDB, keep
history in Delta Lake and the latest values in SQLite or Redis, and serve them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


_DEFINITIONS = frozenset(__all__) - {"FeatureStore", "__version__", "checks", "transforms"}
"""The public names that come from :mod:`headwater.definitions`."""


def __getattr__(name: str) -> Any:
    # The public names are imported on first use, so `import headwater` (and the start of the
    # `headwater` command, which handles Ctrl-C from its first line) does next to nothing.
    import importlib

    if name in _DEFINITIONS:
        value = getattr(importlib.import_module("headwater.definitions"), name)
    elif name in ("checks", "transforms"):
        value = importlib.import_module(f"headwater.{name}")
    elif name == "FeatureStore":
        value = importlib.import_module("headwater.feature_store").FeatureStore
    else:
        raise AttributeError(f"module 'headwater' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
