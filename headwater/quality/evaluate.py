"""Evaluate checks on a batch of rows held in DuckDB, vectorised.

Row-level checks are compiled to SQL by :mod:`headwater.quality.rules`: one boolean per check
and row. When no check can set rows aside (severities ``warn`` and ``fail`` only) and every
check is SQL, one aggregate over the batch counts everything and the rows go on as they came.
Otherwise one statement copies the batch into a temporary table with those booleans as columns;
Python checks and query checks then flag their rows by row number; one aggregate counts
everything. Passing and quarantined rows are views over that table, so both read the same
snapshot of the batch and each row is either passed on or quarantined — never both, never
neither. (A one-shot source, such as a database read, is kept by the runner before it is
checked, so reading it again gives the same rows.)

The batch path calls :func:`evaluate` once per run and stage; the streaming engine calls it once
per micro-batch.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from headwater.definitions.checks import Check, Freshness, Python, RowCount, Schema, Sql
from headwater.errors import QualityFailed
from headwater.quality.results import CheckResult, QualityOutcome, jsonable
from headwater.quality.rules import ROW, RowRule, StoredKeys, compile_rule
from headwater.sql import quote_ident as q
from headwater.sql import sql_literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.quality.privacy import Privacy

SAMPLE_SIZE = 5
_PYTHON_BATCH_ROWS = 100_000
_ids = itertools.count()
_ACTION = {"warn": "warned", "quarantine": "quarantined", "fail": "failed"}


def evaluate(
    con: duckdb.DuckDBPyConnection,
    checks: Sequence[Check],
    relation: str,
    *,
    subject: str,
    run_id: str,
    stored_keys: StoredKeys | None = None,
    timestamp_field: str | None = None,
    now_ms: int | None = None,
    privacy: Privacy | None = None,
) -> QualityOutcome:
    """Evaluate ``checks`` on the rows of ``relation``.

    Args:
        con: the DuckDB connection holding ``relation``; the outcome's relations live there.
        checks: the checks, in declaration order (the first failed check names a quarantined
            row's ``_check``).
        relation: SQL usable after ``FROM``: a table or view name, or a table function.
        subject: what is checked, for messages: ``"source 'orders'"``, ``"view 'x'"``.
        run_id: the run's id, stored in the quarantined rows.
        stored_keys: rows already stored, for ``unique`` checks with ``stored=True``.
        timestamp_field: the event-time column ``freshness`` checks read by default.
        now_ms: the current time in epoch milliseconds, for ``freshness`` (default: now).
        privacy: the view's privacy steps, applied to the sampled values, the messages and
            the quarantined rows (source checks see the rows before the view's steps).

    Returns:
        The outcome: the relation of passing rows, the quarantined rows and the results. Call
        ``raise_for_failures()`` to stop on failed ``fail`` checks, and ``release()`` once
        done with its relations.
    """
    types = {
        str(row[0]): str(row[1])
        for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    }
    results: dict[int, CheckResult] = {}
    rules: list[RowRule] = []
    batch: list[tuple[int, Check]] = []
    stored_columns: list[str] = []
    if stored_keys is not None:
        described = con.execute(f"DESCRIBE SELECT * FROM {stored_keys.relation}").fetchall()
        stored_columns = [str(row[0]) for row in described]
    for index, check in enumerate(checks):
        missing = [c for c in check.columns if c not in types]
        if missing and not isinstance(check, Schema):  # a schema check reports them itself
            results[index] = _broken(
                subject,
                check,
                f"column {missing[0]!r} is not in the batch (columns: {', '.join(types)})",
            )
        elif check.ROW_LEVEL:
            rules.append(compile_rule(check, index, relation, types, stored_keys, stored_columns))
        else:
            batch.append((index, check))
    outcome = QualityOutcome(subject, run_id, relation, None, [], 0, 0, con)
    if privacy is not None:
        outcome._temporary.append(("TABLE", privacy.bind(con)))  # dropped after the views
    # Rows are flagged into a table only when some may be set aside or flagged outside SQL;
    # otherwise one aggregate over the batch counts everything and the rows go on unchanged.
    tag = f"__hw_q{next(_ids)}"
    flagged = any(r.check.severity == "quarantine" or r.fail is None for r in rules)
    if flagged:
        _flag_table(con, tag, relation, rules, subject)
        outcome._temporary.append(("TABLE", tag))
        for rule in rules:
            if rule.fail is None:
                error = _flag_outside_sql(con, tag, rule, list(types), subject)
                if error is not None:
                    results[_index(rule)] = error
        counts = _aggregate(con, tag, [], rules, batch, types, timestamp_field, privacy=privacy)
    elif rules:
        import duckdb

        flags, params = _flag_select(relation, rules)
        try:
            counts = _aggregate(
                con,
                f"({flags})",
                params,
                rules,
                batch,
                types,
                timestamp_field,
                relation,
                privacy=privacy,
            )
        except duckdb.Error as exc:
            raise _unevaluable(subject, rules, exc) from None
    else:
        counts = _aggregate(con, relation, [], rules, batch, types, timestamp_field)
    outcome.rows_in = int(counts["rows"])
    now = int(time.time() * 1000) if now_ms is None else now_ms
    for index, check in batch:
        if index not in results:
            results[index] = _batch_result(subject, index, check, counts, types, now, con)
    quarantining: list[RowRule] = []
    for rule in rules:
        index = _index(rule)
        if index in results:
            continue
        result = _row_result(subject, rule, counts)
        results[index] = result
        if result.action == "quarantined":
            quarantining.append(rule)
    outcome.results = [results[i] for i in sorted(results)]
    if flagged:
        _split(con, outcome, tag, list(types), quarantining, run_id, privacy)
    return outcome


def _index(rule: RowRule) -> int:
    return int(rule.flag.removeprefix("__hw_f"))


def _flag_select(relation: str, rules: list[RowRule]) -> tuple[str, list[Any]]:
    """The query of the batch's rows with one boolean column per rule (true: the row offends),
    and its parameters. Rules checked outside SQL start with ``false`` and a row number."""
    extras = [f"{expr} AS {name}" for rule in rules for name, expr in rule.extras.items()]
    if any(rule.fail is None for rule in rules):
        extras.append(f"row_number() OVER () AS {ROW}")
    flags = []
    params: list[Any] = []
    for rule in rules:
        if rule.fail is None:
            flags.append(f"false AS {rule.flag}")
        else:
            flags.append(f"coalesce(({rule.fail}), false) AS {rule.flag}")
            params += rule.params
    inner = ", ".join(["__hw_r.*", *extras])
    joins = " ".join(join for rule in rules for join in rule.joins)
    query = (
        f"WITH __hw_x AS (SELECT {inner} FROM {relation} AS __hw_r {joins}) "
        f"SELECT {', '.join(['*', *flags])} FROM __hw_x"
    )
    return query, params


def _flag_table(
    con: duckdb.DuckDBPyConnection, tag: str, relation: str, rules: list[RowRule], subject: str
) -> None:
    query, params = _flag_select(relation, rules)
    import duckdb

    try:
        con.execute(f"CREATE TEMP TABLE {tag} AS {query}", params)
    except duckdb.Error as exc:  # e.g. an expression that cannot convert this batch's values
        raise _unevaluable(subject, rules, exc) from None


def _unevaluable(subject: str, rules: list[RowRule], exc: BaseException) -> QualityFailed:
    names = ", ".join(repr(rule.check.name) for rule in rules)
    return QualityFailed(
        f"{subject}: the checks {names} could not be evaluated on this batch: {_first_line(exc)}",
        fix="make the check's SQL robust to the data (TRY_CAST instead of CAST, ...)",
    )


def _flag_outside_sql(
    con: duckdb.DuckDBPyConnection, tag: str, rule: RowRule, columns: list[str], subject: str
) -> CheckResult | None:
    """Flag the rows of a Python or query check; a result when the check cannot be judged
    row by row (it errs, or judges whole batches)."""
    import duckdb
    import pyarrow as pa

    check = rule.check
    if isinstance(check, Sql):
        found = f"{tag}_sql"
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {found} AS {check.query.replace('{rows}', tag)}"
            )
        except duckdb.Error as exc:
            return _broken(subject, check, f"its query failed: {_first_line(exc)}")
        try:
            returned = [str(r[0]) for r in con.execute(f"DESCRIBE {found}").fetchall()]
            if ROW in returned:
                match = f"SELECT {ROW} FROM {found}"
            else:
                common = [c for c in returned if c in columns]
                if not common:
                    return _broken(
                        subject,
                        check,
                        "its query returns no column of the batch (it returns "
                        f"{', '.join(returned)}); select the offending rows, e.g. SELECT * FROM "
                        "{rows} WHERE ...",
                    )
                on = " AND ".join(f"t.{q(c)} IS NOT DISTINCT FROM m.{q(c)}" for c in common)
                keys = ", ".join(q(c) for c in common)
                match = (
                    f"SELECT t.{ROW} FROM {tag} AS t JOIN (SELECT DISTINCT {keys} FROM {found}) "
                    f"AS m ON {on}"
                )
            con.execute(f"UPDATE {tag} SET {rule.flag} = true WHERE {ROW} IN ({match})")
        finally:
            con.execute(f"DROP TABLE IF EXISTS {found}")
        return None
    assert isinstance(check, Python)
    wanted = list(check.only or columns)
    select = ", ".join([ROW, *(q(c) for c in wanted)])
    reader = con.sql(f"SELECT {select} FROM {tag}").to_arrow_reader(_PYTHON_BATCH_ROWS)
    failing: list[pa.Array] = []
    verdicts: list[bool] = []
    for batch in reader:
        if batch.num_rows == 0:
            continue
        data = pa.RecordBatch.from_arrays(batch.columns[1:], names=wanted)
        try:
            returned = check.function(data)
        except Exception as exc:
            return _broken(subject, check, f"the function raised {type(exc).__name__}: {exc}")
        if isinstance(returned, bool) or type(returned).__name__ == "bool_":
            verdicts.append(bool(returned))
            continue
        try:
            mask = _mask(returned, batch.num_rows)
        except (TypeError, ValueError, pa.ArrowException) as exc:
            return _broken(
                subject, check, f"the function must return a bool or one boolean per row: {exc}"
            )
        import pyarrow.compute as pc

        failing.append(pc.filter(batch.column(0), pc.invert(pc.fill_null(mask, True))))
    if verdicts and failing:
        return _broken(
            subject,
            check,
            "the function returned a bool for some batches and a boolean per row for others",
        )
    if verdicts:
        if check.severity == "quarantine" or check.mostly is not None:
            return _broken(
                subject,
                check,
                "the function returned one bool for the whole batch; "
                "severity='quarantine' and mostly= need one boolean per row",
            )
        return _verdict(subject, check, all(verdicts), len(verdicts))
    ids = pa.concat_arrays(failing) if failing else pa.array([], pa.int64())
    if len(ids):
        name = f"{tag}_py"
        con.register(name, pa.table({ROW: ids}))
        try:
            con.execute(
                f"UPDATE {tag} SET {rule.flag} = true WHERE {ROW} IN (SELECT {ROW} FROM {name})"
            )
        finally:
            con.unregister(name)
    return None


def _mask(returned: Any, rows: int) -> pa.Array:
    import pyarrow as pa

    if isinstance(returned, pa.ChunkedArray):
        returned = returned.combine_chunks()
    mask = returned if isinstance(returned, pa.Array) else pa.array(returned, pa.bool_())
    if not pa.types.is_boolean(mask.type):
        raise TypeError(f"got an array of {mask.type}")
    if len(mask) != rows:
        raise ValueError(f"got {len(mask)} values for {rows} rows")
    return mask


def _aggregate(
    con: duckdb.DuckDBPyConnection,
    source: str,
    params: list[Any],
    rules: list[RowRule],
    batch: list[tuple[int, Check]],
    types: dict[str, str],
    timestamp_field: str | None,
    relation: str | None = None,
    *,
    privacy: Privacy | None = None,
) -> dict[str, Any]:
    """One pass over the flagged rows (a table, or the query of :func:`_flag_select` over
    ``relation`` in parentheses, with its ``params``) counting rows, offending and checked rows
    and a few offending values per rule (as the view's privacy steps leave them), and the
    newest event times."""

    def shown(column: str) -> str:
        private = privacy is not None and column in privacy.columns
        return privacy.expr(column) if privacy is not None and private else q(column)

    items = ["count(*) AS rows"]
    for rule in rules:
        items.append(f"count(*) FILTER (WHERE {rule.flag}) AS {rule.flag}_failed")
        items.append(f"count(*) FILTER (WHERE {rule.checked}) AS {rule.flag}_checked")
        if len(rule.sample) == 1:
            # Any SAMPLE_SIZE offending values (arg_min over a constant imposes no order).
            items.append(
                f"arg_min({shown(rule.sample[0])}, 0, {SAMPLE_SIZE}) FILTER (WHERE {rule.flag}) "
                f"AS {rule.flag}_sample"
            )
    for index, check in batch:
        if isinstance(check, Freshness):
            column = check.column or timestamp_field
            if column and column in types:
                items.append(f"max({_epoch_ms(column, types[column])}) AS __hw_newest{index}")
    query = f"SELECT {', '.join(items)} FROM {source}"
    # Arrow, not fetchall: sampled values keep their types without extra conversions.
    table = con.sql(query, params=params or None).to_arrow_table()
    counts = {name: table.column(name)[0].as_py() for name in table.column_names}
    for rule in rules:
        if len(rule.sample) > 1 and counts[f"{rule.flag}_failed"]:
            # Rows of several columns: building them for every row of the batch costs more
            # than reading the first few offending ones again (unflagged: this rule alone).
            where, values = source, params
            if relation is not None:
                flags, values = _flag_select(relation, [rule])
                where = f"({flags})"
            cols = ", ".join(f"{shown(c)} AS {q(c)}" for c in rule.sample)
            rows = con.sql(
                f"SELECT {cols} FROM {where} WHERE {rule.flag} LIMIT {SAMPLE_SIZE}",
                params=values or None,
            ).to_arrow_table()
            counts[f"{rule.flag}_sample"] = rows.to_pylist()
    return counts


def _epoch_ms(column: str, duck_type: str) -> str:
    integers = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
    if duck_type in integers:
        return f"CAST({q(column)} AS BIGINT)"
    return f"epoch_ms(TRY_CAST({q(column)} AS TIMESTAMPTZ))"


def _row_result(subject: str, rule: RowRule, counts: dict[str, Any]) -> CheckResult:
    check = rule.check
    failed = int(counts[f"{rule.flag}_failed"])
    checked = int(counts[f"{rule.flag}_checked"])
    share = 1.0 if checked == 0 else (checked - failed) / checked
    passed = failed == 0 if check.mostly is None else share >= check.mostly
    sample = [jsonable(value) for value in counts.get(f"{rule.flag}_sample") or []]
    where = _where(check)
    if failed == 0:
        text = f"all {checked} rows pass ({check.describe()})"
    else:
        text = f"{failed} of {checked} rows fail ({check.describe()}), e.g. {_show(sample)}"
    if check.mostly is not None:
        verdict = "at least" if passed else "below"
        text += f"; {share:.2%} pass, {verdict} mostly={check.mostly}"
    return _result(
        subject,
        check,
        passed=passed,
        action="passed" if passed else _ACTION[check.severity],
        message=f"{subject}: check {check.name!r}{where}: {text}",
        rows_checked=checked,
        rows_failed=failed,
        sample=sample,
        diagnostics={"pass_share": share} if check.mostly is not None else {},
    )


def _batch_result(
    subject: str,
    index: int,
    check: Check,
    counts: dict[str, Any],
    types: dict[str, str],
    now_ms: int,
    con: duckdb.DuckDBPyConnection,
) -> CheckResult:
    rows = int(counts["rows"])
    diagnostics: dict[str, Any] = {}
    if isinstance(check, RowCount):
        low, high = check.min_rows, check.max_rows
        passed = (low is None or rows >= low) and (high is None or rows <= high)
        text = f"{rows} rows, expected {check.describe()}"
        diagnostics["rows"] = rows
    elif isinstance(check, Freshness):
        key = f"__hw_newest{index}"
        newest = counts.get(key)
        if key not in counts:
            passed = False
            text = "no event-time column to judge freshness by; pass column="
        elif newest is None:
            passed = False
            text = "no row has a value to judge freshness by"
        else:
            age = now_ms - int(newest)
            passed = age <= check.max_age_ms
            text = f"newest value is {_age(age)} old, expected {check.describe()}"
            diagnostics = {"newest_ms": int(newest), "age_ms": age}
    elif isinstance(check, Schema):
        wrong: list[str] = []
        for column, wanted in check.types:
            actual = types.get(column)
            canonical = str(con.execute(f"SELECT typeof(CAST(NULL AS {wanted}))").fetchall()[0][0])
            if actual is None:
                wrong.append(f"{column} is missing (expected {canonical})")
            elif actual != canonical:
                wrong.append(f"{column} is {actual}, expected {canonical}")
        if check.exact:
            extra = [c for c in types if c not in dict(check.types)]
            wrong += [f"{c} is not expected" for c in extra]
        passed = not wrong
        text = "; ".join(wrong) if wrong else "every column has its type"
        diagnostics["problems"] = wrong
    else:  # pragma: no cover - every batch-level kind is handled above
        raise TypeError(f"{type(check).__name__} is not a batch-level check")
    return _result(
        subject,
        check,
        passed=passed,
        action="passed" if passed else _ACTION[check.severity],
        message=f"{subject}: check {check.name!r}{_where(check)}: {text}",
        rows_checked=rows,
        diagnostics=diagnostics,
    )


def _split(
    con: duckdb.DuckDBPyConnection,
    outcome: QualityOutcome,
    source: str,
    columns: list[str],
    quarantining: list[RowRule],
    run_id: str,
    privacy: Privacy | None = None,
) -> None:
    """Create the views of passing and quarantined rows over the flag table (quarantined
    rows, and the values their reasons quote, as the view's privacy steps leave them)."""
    select = ", ".join(q(c) for c in columns)
    passing = f"{source}_pass"
    if not quarantining:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {passing} AS SELECT {select} FROM {source}")
        outcome._temporary.append(("VIEW", passing))
        outcome.relation = passing
        return
    bad = " OR ".join(rule.flag for rule in quarantining)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {passing} AS SELECT {select} FROM {source} WHERE NOT ({bad})"
    )
    first = " ".join(
        f"WHEN {rule.flag} THEN {sql_literal(rule.check.name)}" for rule in quarantining
    )
    reasons = ", ".join(f"CASE WHEN {rule.flag} THEN {rule.reason} END" for rule in quarantining)
    quarantine = f"{source}_bad"
    rows, kept = source, select
    if privacy is not None:
        rows = f"(SELECT {privacy.protected(columns)} FROM {source})"
        kept = ", ".join(q(c) for c in privacy.kept(columns))
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {quarantine} AS SELECT {kept}, CASE {first} END AS _check, "
        f"concat_ws('; ', {reasons}) AS _reason, {sql_literal(run_id)} AS _run_id "
        f"FROM {rows} WHERE {bad}"
    )
    outcome._temporary += [("VIEW", passing), ("VIEW", quarantine)]
    outcome.relation = passing
    outcome.quarantine_relation = quarantine
    outcome.rows_quarantined = int(
        con.execute(f"SELECT count(*) FROM {source} WHERE {bad}").fetchall()[0][0]
    )


def _result(subject: str, check: Check, **outcome: Any) -> CheckResult:
    """A result of ``check``: what it is comes from the check, what happened from ``outcome``."""
    return CheckResult(
        subject=subject,
        check=check.name,
        kind=check.kind,
        severity=check.severity,
        columns=check.columns,
        **outcome,
    )


def _broken(subject: str, check: Check, problem: str) -> CheckResult:
    """A check that could not be evaluated: it fails the run whatever its severity."""
    return _result(
        subject,
        check,
        passed=False,
        action="failed",
        message=f"{subject}: check {check.name!r}{_where(check)} cannot be evaluated: {problem}",
        diagnostics={"error": problem},
    )


def _verdict(subject: str, check: Check, passed: bool, batches: int) -> CheckResult:
    text = "passed" if passed else "returned false"
    return _result(
        subject,
        check,
        passed=passed,
        action="passed" if passed else _ACTION[check.severity],
        message=f"{subject}: check {check.name!r}: {check.describe()} {text} "
        f"(over {batches} batch{'es' if batches > 1 else ''})",
        diagnostics={"batches": batches},
    )


def _where(check: Check) -> str:
    if not check.columns or isinstance(check, Schema | Python):
        return ""
    names = ", ".join(repr(c) for c in check.columns)
    return f" on column{'s' if len(check.columns) > 1 else ''} {names}"


def _show(sample: list[Any]) -> str:
    text = ", ".join(repr(v) for v in sample[:3])
    return text if len(text) <= 200 else text[:197] + "..."


def _age(millis: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if abs(millis) >= size:
            return f"{millis / size:.1f}{unit}"
    return f"{millis}ms"


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__
