"""Data quality: evaluate checks on batches, quarantine offending rows, schema contracts.

:func:`evaluate` is the entry point engines call — the batch runner once per run and stage
(through :class:`headwater.quality.gate.QualityGate`), a streaming engine once per micro-batch —
and :func:`write_quarantine` stores what it set aside. Checks themselves are declared with
:mod:`headwater.checks`.
"""

from headwater.quality.evaluate import evaluate
from headwater.quality.quarantine import (
    quarantine_location,
    quarantine_table,
    read_quarantine,
    write_quarantine,
)
from headwater.quality.results import QUARANTINE_COLUMNS, CheckResult, QualityOutcome, raise_for
from headwater.quality.rules import StoredKeys

__all__ = [
    "QUARANTINE_COLUMNS",
    "CheckResult",
    "QualityOutcome",
    "StoredKeys",
    "evaluate",
    "quarantine_location",
    "quarantine_table",
    "raise_for",
    "read_quarantine",
    "write_quarantine",
]
