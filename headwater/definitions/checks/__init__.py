"""Data-quality check declarations: the classes behind :mod:`headwater.checks`.

Users build checks with the functions of :mod:`headwater.checks` (``checks.not_null(...)``);
sources and views hold these objects, and :mod:`headwater.quality` evaluates them. Each check is
a frozen keyword-only dataclass that checks its fields when it is built.
"""

from headwater.definitions.checks.base import (
    SCHEMA_MODES,
    SEVERITIES,
    Check,
    ColumnCheck,
    SchemaMode,
    Severity,
    Value,
    check_list,
    check_schema_mode,
)
from headwater.definitions.checks.batches import Freshness, RowCount, Schema
from headwater.definitions.checks.rows import (
    BatchFunction,
    Between,
    ConformsTo,
    Expression,
    InSet,
    Matches,
    MaxLength,
    NotNull,
    Python,
    Sql,
    Unique,
)

__all__ = [
    "SCHEMA_MODES",
    "SEVERITIES",
    "BatchFunction",
    "Between",
    "Check",
    "ColumnCheck",
    "ConformsTo",
    "Expression",
    "Freshness",
    "InSet",
    "Matches",
    "MaxLength",
    "NotNull",
    "Python",
    "RowCount",
    "Schema",
    "SchemaMode",
    "Severity",
    "Sql",
    "Unique",
    "Value",
    "check_list",
    "check_schema_mode",
]
