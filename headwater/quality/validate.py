"""Check definitions against the columns they will see, at ``apply``.

Every check is evaluated once on an empty batch with the real columns (so its SQL is compiled
and bound exactly as a run will), regular expressions and type names are compiled by DuckDB,
and expressions must be booleans. Every problem is collected, then reported together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from headwater.definitions.checks import Check, ConformsTo, Expression, Freshness, Matches, Schema
from headwater.errors import DefinitionError
from headwater.quality.evaluate import evaluate
from headwater.sql import not_one_expression
from headwater.sql import quote_ident as q

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.definitions import FeatureView

_EMPTY = "__hw_empty_batch"


def validate_view(view: FeatureView, source_schema: pa.Schema, output_schema: pa.Schema) -> None:
    """Raise :class:`DefinitionError` naming every check of ``view`` and of its source that
    cannot run on the columns they will see."""
    source = view.source
    problems = check_problems(
        source.checks,
        source_schema,
        owner=f"source {source.name!r}",
        rows=f"source {source.name!r}",
        timestamp_field=source.timestamp_field,
    )
    problems += check_problems(
        view.checks,
        output_schema,
        owner=f"view {view.name!r}",
        rows=f"the rows view {view.name!r} computes",
        timestamp_field="event_timestamp",
    )
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise DefinitionError(
            f"{count} with data-quality checks: " + "; ".join(problems),
            fix="use the columns the rows have, and valid SQL, patterns and types",
        )


def check_problems(
    checks: Sequence[Check],
    schema: pa.Schema,
    *,
    owner: str,
    rows: str,
    timestamp_field: str | None = None,
) -> list[str]:
    """What keeps ``checks`` from running on ``schema``, one line per problem.

    Args:
        checks: the checks of one source or view.
        schema: the columns they will see.
        owner: who declares them, e.g. ``"source 'orders'"`` or ``"view 'user_orders'"``.
        rows: what the rows are, for messages: ``"source 'orders'"``, ``"the view's output"``.
        timestamp_field: the column ``freshness`` reads by default.
    """
    if not checks:
        return []
    import duckdb

    problems: list[str] = []
    con = duckdb.connect()
    try:
        con.register(_EMPTY, schema.empty_table())
        listing = ", ".join(schema.names)
        for check in checks:
            where = f"{owner}: check {check.name!r}"
            missing = [c for c in check.columns if c not in schema.names]
            default = timestamp_field if timestamp_field in schema.names else None
            if isinstance(check, Freshness) and check.column is None and default is None:
                problems.append(f"{where} has no event-time column to read; pass column=")
            if missing:
                problems.append(
                    f"{where} names column {missing[0]!r}, which is not a column of {rows} "
                    f"(columns: {listing})"
                )
                continue
            problem = _problem(con, check)
            if problem:
                problems.append(f"{where}: {problem}")
    finally:
        con.close()
    return problems


def _problem(con: duckdb.DuckDBPyConnection, check: Check) -> str | None:
    import duckdb

    types = [check.type_name] if isinstance(check, ConformsTo) else []
    types += [type_name for _, type_name in check.types] if isinstance(check, Schema) else []
    for type_name in types:
        # Type names are spliced into SQL: one type, never a second statement.
        problem = not_one_expression(f"CAST(NULL AS {type_name})")
        if problem:
            return f"{type_name!r} is not a type name"
    try:
        if isinstance(check, Matches):
            con.execute("SELECT regexp_matches('', ?)", [check.pattern]).fetchall()
        if isinstance(check, ConformsTo):
            con.execute(f"SELECT TRY_CAST(NULL AS {check.type_name})").fetchall()
        if isinstance(check, Schema):
            for column, type_name in check.types:
                try:
                    con.execute(f"SELECT TRY_CAST(NULL AS {type_name})").fetchall()
                except duckdb.Error as exc:
                    return f"{type_name!r} (column {column!r}) is not a type: {_line(exc)}"
        if isinstance(check, Expression):
            described = con.execute(
                f"DESCRIBE SELECT ({check.sql}) AS {q('x')} FROM {_EMPTY}"
            ).fetchall()
            kind = str(described[0][1])
            if kind != "BOOLEAN":
                return f"the expression {check.sql!r} is a {kind}, not a boolean"
        outcome = evaluate(con, [check], _EMPTY, subject="", run_id="apply")
        broken = [r for r in outcome.results if r.diagnostics.get("error")]
        outcome.release()
        if broken:
            return str(broken[0].diagnostics["error"])
    except duckdb.Error as exc:
        return _line(exc)
    return None


def _line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__
