"""Schema contracts of sources: what a run does when the columns differ from ``apply``.

``apply`` records each source's columns in the registry; every run compares the rows it reads
with them. New columns, changed types and missing columns are handled by the source's
``schema_mode`` (after dlt's schema contracts):

================== ======================================================================
``evolve``         accept: new columns flow on, changed types are kept, missing columns
                   read as null; a warning names them (``apply`` again to record them)
``freeze``         any difference stops the run before anything is written
``discard_column`` new columns are dropped; changed columns are converted to the recorded
                   type (values that do not convert become null); missing columns read null
``discard_row``    rows with a value in a new column, or a value that does not convert to
                   the recorded type, are quarantined; the rest continue as with
                   ``discard_column``
================== ======================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from headwater.definitions.checks import Check, ColumnCheck, ConformsTo
from headwater.quality.results import CheckResult
from headwater.sql import quote_ident as q

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.definitions import Source

KIND = "schema_mode"


@dataclass(frozen=True, kw_only=True)
class NewColumn(ColumnCheck):
    """Internal: a row fails when it has a value in a column the contract does not know."""

    kind: ClassVar[str] = KIND

    def describe(self) -> str:
        return f"{self.column} is a new column (schema_mode='discard_row')"


@dataclass(frozen=True, kw_only=True)
class RecordedType(ConformsTo):
    """Internal: a row fails when its value does not convert to the type recorded at ``apply``.

    The type is DuckDB's own name of the column's type (from ``DESCRIBE``), which may be nested
    (``STRUCT(...)``, ``MAP(...)``) and is not user input, so it is kept as it is rather than
    read as a type name a user wrote.
    """

    def __post_init__(self) -> None:
        ColumnCheck.__post_init__(self)


@dataclass
class Contract:
    """The contract's verdict on a batch.

    Attributes:
        result: the batch-level result naming every difference (``None`` when nothing was
            recorded at apply, or nothing differs).
        checks: row-level checks quarantining rows that break the contract (``discard_row``).
        select: the SELECT list turning passing rows into the recorded shape, or ``None`` to
            keep them as they are.
    """

    result: CheckResult | None = None
    checks: list[Check] = field(default_factory=list)
    select: str | None = None


def compare(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    relation: str,
    recorded: pa.Schema | None,
    subject: str,
) -> Contract:
    """Compare the columns of ``relation`` with those ``recorded`` for ``source``."""
    if recorded is None:
        return Contract()
    current = _types(con, f"SELECT * FROM {relation}")
    name = "__hw_recorded_schema"
    import pyarrow as pa

    # An empty reader, not a table: DuckDB imports pandas to look at a registered table.
    con.register(name, pa.RecordBatchReader.from_batches(recorded, []))
    try:
        before = _types(con, f"SELECT * FROM {name}")
    finally:
        con.unregister(name)
    new = [c for c in current if c not in before]
    changed = [c for c in current if c in before and current[c] != before[c]]
    missing = [c for c in before if c not in current]
    if not (new or changed or missing):
        return Contract()
    mode = source.schema_mode
    problems = (
        [f"new column {c} ({current[c]})" for c in new]
        + [f"{c} changed from {before[c]} to {current[c]}" for c in changed]
        + [f"column {c} ({before[c]}) is missing" for c in missing]
    )
    effect = {
        "evolve": "accepted; run `headwater apply` to record the new schema",
        "freeze": "the source's schema is frozen",
        "discard_column": "new columns dropped, changed ones converted to the recorded type",
        "discard_row": "rows that use them are quarantined",
    }[mode]
    severity = "fail" if mode == "freeze" else "warn"
    result = CheckResult(
        subject=subject,
        check=KIND,
        kind=KIND,
        severity=severity,
        columns=tuple(new + changed + missing),
        passed=False,
        action="failed" if mode == "freeze" else "warned",
        message=f"{subject}: schema_mode={mode!r}: {'; '.join(problems)} ({effect})",
        diagnostics={"new": new, "changed": changed, "missing": missing},
    )
    contract = Contract(result=result)
    if mode in ("evolve", "freeze"):
        if missing:
            nulls = [f"CAST(NULL AS {before[c]}) AS {q(c)}" for c in missing]
            contract.select = ", ".join(["*", *nulls])
        return contract
    if mode == "discard_row":
        contract.checks += [
            NewColumn(name=f"{KIND}:new_column({c})", column=c, severity="quarantine") for c in new
        ]
        contract.checks += [
            RecordedType(
                name=f"{KIND}:type({c})", column=c, type_name=before[c], severity="quarantine"
            )
            for c in changed
        ]
    items = [
        f"TRY_CAST({q(c)} AS {before[c]}) AS {q(c)}" if c in changed else q(c)
        for c in current
        if c not in new
    ]
    items += [f"CAST(NULL AS {before[c]}) AS {q(c)}" for c in missing]
    contract.select = ", ".join(items)
    return contract


def _types(con: duckdb.DuckDBPyConnection, query: str) -> dict[str, str]:
    return {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE {query}").fetchall()}
