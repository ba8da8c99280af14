"""The evaluator: every check kind and severity, mostly, quarantine layout, and the invariant
rows in = rows passed + rows quarantined for any combination of checks (a property test)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater import checks
from headwater.errors import QualityFailed
from headwater.quality import QUARANTINE_COLUMNS, QualityOutcome, StoredKeys, evaluate
from tests.helpers import TS

NOW = datetime(2024, 6, 1, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def orders() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 2, 3, None, 5], pa.int64()),
            "amount": pa.array([10.0, -5.0, 20.0, None, 200_000.0, 3.0]),
            "status": ["new", "paid", "lost", "new", "paid", None],
            "email": ["a@b.io", "nope", "c@d.io", "e@f.io", "g@h.io", "x" * 40],
            "ts": pa.array([NOW - timedelta(hours=h) for h in range(6)], TS),
        }
    )


def run(
    con: duckdb.DuckDBPyConnection, rules: list[Any], table: pa.Table | None = None, **kw: Any
) -> QualityOutcome:
    con.register("batch", orders() if table is None else table)
    kw.setdefault("timestamp_field", "ts")
    kw.setdefault("now_ms", NOW_MS)
    return evaluate(con, rules, "batch", subject="source 'orders'", run_id="run-1", **kw)


def ids(con: duckdb.DuckDBPyConnection, relation: str) -> list[Any]:
    return sorted(
        (r["id"] for r in con.sql(f"SELECT id FROM {relation}").to_arrow_table().to_pylist()),
        key=lambda v: (v is not None, v or 0),
    )


# ---------------------------------------------------------------------- row-level checks
@pytest.mark.parametrize(
    ("rule", "failing", "checked"),
    [
        (checks.not_null("id"), [None], 6),
        (checks.unique("id"), [2, 2], 5),
        (checks.between("amount", 0, 100_000), [2, None], 5),
        (checks.between("amount", min_value=0), [2], 5),
        (checks.in_set("status", ["new", "paid"]), [2], 5),
        (checks.matches("email", r"^[^@]+@[^@]+\.io$"), [2, 5], 6),
        (checks.max_length("email", 10), [5], 6),
        (checks.type("status", "BIGINT"), [1, 2, 2, 3, None], 5),
        (checks.expression("amount < 100"), [None], 6),
        (checks.sql("SELECT * FROM {rows} WHERE id > 2", name="big_ids"), [3, 5], 6),
        (checks.python(lambda b: pc.less(pc.fill_null(b["id"], 0), 3), name="py"), [3, 5], 6),
    ],
)
def test_each_row_level_check_finds_its_rows(
    con: duckdb.DuckDBPyConnection, rule: Any, failing: list[Any], checked: int
) -> None:
    outcome = run(con, [rule])
    result = outcome.results[0]
    assert result.action == "failed"  # default severity
    assert not result.passed
    assert result.rows_failed == len(failing)
    assert result.rows_checked == checked
    assert 1 <= len(result.sample) <= 5
    assert f"check {rule.name!r}" in result.message
    assert result.message.startswith("source 'orders': ")
    # fail does not set rows aside: every row goes on, and the caller stops the run.
    assert outcome.rows_quarantined == 0
    assert len(ids(con, outcome.relation)) == 6
    with pytest.raises(QualityFailed, match="1 check failed, nothing was written") as info:
        outcome.raise_for_failures()
    assert info.value.failures == [result]
    assert info.value.fix


def test_a_column_check_names_the_column_and_samples_values(
    con: duckdb.DuckDBPyConnection,
) -> None:
    result = run(con, [checks.between("amount", 0, 100_000)]).results[0]
    assert "on column 'amount'" in result.message
    assert "2 of 5 rows fail" in result.message
    assert sorted(result.sample) == [-5.0, 200_000.0]


def test_severities(con: duckdb.DuckDBPyConnection) -> None:
    outcome = run(
        con,
        [
            checks.between("amount", 0, 100_000, severity="warn"),
            checks.not_null("id", severity="quarantine"),
            checks.row_count(min=1),
        ],
    )
    assert [r.action for r in outcome.results] == ["warned", "quarantined", "passed"]
    assert outcome.failures == []
    assert [r.check for r in outcome.warnings] == ["between(amount)"]
    outcome.raise_for_failures()  # nothing failed
    assert outcome.rows_quarantined == 1
    assert ids(con, outcome.relation) == [1, 2, 2, 3, 5]  # the warned row -5.0 went on


def test_quarantined_rows_carry_check_reason_and_run(con: duckdb.DuckDBPyConnection) -> None:
    outcome = run(
        con,
        [
            checks.not_null("id", severity="quarantine"),
            checks.between("amount", 0, 100_000, severity="quarantine"),
            checks.in_set("status", ["new", "paid"], severity="quarantine"),
        ],
    )
    table = outcome.quarantined
    assert table.column_names == [*orders().column_names, *QUARANTINE_COLUMNS]
    rows = sorted(table.to_pylist(), key=lambda r: r["email"])
    assert [(r["id"], r["_check"], r["_run_id"]) for r in rows] == [
        (2, "in_set(status)", "run-1"),  # c@d.io: status 'lost'
        (None, "not_null(id)", "run-1"),  # g@h.io: id null and amount too big
        (2, "between(amount)", "run-1"),  # nope: amount -5
    ]
    # A row failing several checks is quarantined once: the first check in declaration
    # order names it, and the reason lists every failure.
    assert rows[1]["_reason"] == (
        "not_null(id): id is null; between(amount): amount = 200000.0 is outside [0, 100000]"
    )
    assert rows[0]["_reason"] == "in_set(status): status = lost is not in {'new', 'paid'}"
    assert outcome.rows_in == 6
    assert outcome.rows_quarantined == 3
    assert outcome.rows_passed == 3
    assert ids(con, outcome.relation) == [1, 3, 5]


def test_mostly_makes_a_row_check_a_batch_check(con: duckdb.DuckDBPyConnection) -> None:
    # 4 of 5 statuses are known: 80 %.
    tolerated = run(con, [checks.in_set("status", ["new", "paid"], mostly=0.8)]).results[0]
    assert tolerated.passed
    assert tolerated.action == "passed"
    assert tolerated.rows_failed == 1
    assert "80.00% pass, at least mostly=0.8" in tolerated.message
    strict = run(con, [checks.in_set("status", ["new", "paid"], mostly=0.81)]).results[0]
    assert strict.action == "failed"
    assert "below mostly=0.81" in strict.message
    # Within the tolerance the offending rows go on; beyond it, quarantine applies to them.
    within = run(con, [checks.in_set("status", ["new", "paid"], severity="quarantine", mostly=0.8)])
    assert within.rows_quarantined == 0
    beyond = run(con, [checks.in_set("status", ["new", "paid"], severity="quarantine", mostly=0.9)])
    assert beyond.rows_quarantined == 1


def test_unique_against_stored_rows(con: duckdb.DuckDBPyConnection) -> None:
    stored = pa.table({"id": pa.array([3, 1], pa.int64()), "email": ["e@f.io", "old@x.io"]})
    con.register("stored", stored)
    rule = checks.unique("id", severity="quarantine")
    outcome = run(con, [rule], stored_keys=StoredKeys("stored", identity=("id", "email")))
    reasons = {r["_reason"] for r in outcome.quarantined.to_pylist()}
    # id 3 is stored with the same identity (a rerun writes it again): not a duplicate.
    assert reasons == {
        "unique(id): id = 1 is already stored",
        "unique(id): id = 2 appears 2 times in the batch",
    }
    assert outcome.rows_quarantined == 3
    local = run(
        con,
        [checks.unique("id", stored=False, severity="quarantine")],
        stored_keys=StoredKeys("stored"),
    )
    assert local.rows_quarantined == 2


def test_checks_that_set_nothing_aside_count_without_copying_the_batch(
    con: duckdb.DuckDBPyConnection,
) -> None:
    stored = pa.table({"id": pa.array([1], pa.int64()), "email": ["old@x.io"]})
    con.register("stored", stored)
    rules = [
        checks.unique("id"),
        checks.between("amount", 0, 100_000),
        checks.not_null("id", severity="fail"),
    ]
    warned = run(
        con,
        [checks.unique("id", severity="warn"), *rules[1:]],
        stored_keys=StoredKeys("stored", identity=("id", "email")),
    )
    # The rows go on as they came: no flag table, nothing to release.
    assert warned.relation == "batch"
    assert warned._temporary == []
    assert [(r.check, r.rows_failed, r.rows_checked) for r in warned.results] == [
        ("unique(id)", 3, 5),
        ("between(amount)", 2, 5),
        ("not_null(id)", 1, 6),
    ]
    assert sorted(warned.results[0].sample) == [1, 2, 2]
    assert sorted(warned.results[1].sample) == [-5.0, 200_000.0]
    assert warned.results[2].sample == [
        {
            "id": None,
            "amount": 200_000.0,
            "status": "paid",
            "email": "g@h.io",
            "ts": "2024-05-31T20:00:00+00:00",
        }
    ]
    # The same checks quarantining find the same rows.
    quarantined = run(
        con,
        [checks.unique("id", severity="quarantine"), *rules[1:]],
        stored_keys=StoredKeys("stored", identity=("id", "email")),
    )
    assert quarantined.relation != "batch"
    assert [r.rows_failed for r in quarantined.results] == [3, 2, 1]
    assert quarantined.rows_quarantined == 3


# ---------------------------------------------------------------------- batch-level checks
def test_row_count(con: duckdb.DuckDBPyConnection) -> None:
    assert run(con, [checks.row_count(min=1, max=6)]).results[0].passed
    result = run(con, [checks.row_count(max=5)]).results[0]
    assert result.action == "failed"
    assert result.message == (
        "source 'orders': check 'row_count': 6 rows, expected between 0 and 5 rows"
    )
    empty = run(con, [checks.row_count(min=1)], table=orders().slice(0, 0)).results[0]
    assert empty.action == "failed"


def test_freshness(con: duckdb.DuckDBPyConnection) -> None:
    fresh = run(con, [checks.freshness("1h")]).results[0]
    assert fresh.passed
    assert fresh.diagnostics == {"newest_ms": NOW_MS, "age_ms": 0}
    stale = run(con, [checks.freshness("1h")], now_ms=NOW_MS + 7_200_000).results[0]
    assert stale.action == "failed"
    assert "newest value is 2.0h old" in stale.message
    empty = run(con, [checks.freshness("1h")], table=orders().slice(0, 0)).results[0]
    assert "no row has a value" in empty.message
    # Integer columns are epoch milliseconds.
    millis = pa.table({"at": pa.array([NOW_MS - 10], pa.int64())})
    assert run(con, [checks.freshness("1s", column="at")], table=millis).results[0].passed


def test_schema_conformance(con: duckdb.DuckDBPyConnection) -> None:
    good = checks.schema({"id": "int64", "amount": "DOUBLE", "ts": "TIMESTAMPTZ"})
    assert run(con, [good]).results[0].passed
    bad = checks.schema({"id": "VARCHAR", "missing": "int"}, exact=True)
    result = run(con, [bad]).results[0]
    assert result.action == "failed"
    assert result.diagnostics["problems"][:2] == [
        "id is BIGINT, expected VARCHAR",
        "missing is missing (expected BIGINT)",
    ]
    assert "email is not expected" in result.message


def test_python_check_over_whole_batches(con: duckdb.DuckDBPyConnection) -> None:
    seen: list[int] = []

    def small(batch: pa.RecordBatch) -> bool:
        seen.append(batch.num_rows)
        return batch.num_rows < 3

    result = run(con, [checks.python(small, severity="warn")]).results[0]
    assert seen == [6]  # called once per Arrow batch, never per row
    assert result.action == "warned"
    whole = checks.python(lambda b: True, severity="quarantine", name="whole")
    broken = run(con, [whole]).results[0]
    assert broken.action == "failed"
    assert "need one boolean per row" in broken.message


def test_python_check_gets_only_its_columns(con: duckdb.DuckDBPyConnection) -> None:
    names: list[list[str]] = []

    def look(batch: pa.RecordBatch) -> pa.Array:
        names.append(batch.schema.names)
        return pa.array([True] * batch.num_rows)

    assert run(con, [checks.python(look, columns=["amount", "id"])]).results[0].passed
    assert names == [["amount", "id"]]


# ---------------------------------------------------------------------- broken checks
def test_checks_that_cannot_be_evaluated_fail_whatever_their_severity(
    con: duckdb.DuckDBPyConnection,
) -> None:
    def boom(batch: pa.RecordBatch) -> Any:
        raise ValueError("no")

    outcome = run(
        con,
        [
            checks.not_null("gone", severity="warn"),
            checks.python(boom, severity="warn"),
            checks.sql("SELECT count(*) AS n FROM {rows}", name="counted", severity="warn"),
            checks.python(lambda b: [True], name="short", severity="warn"),
        ],
    )
    assert [r.action for r in outcome.results] == ["failed"] * 4
    messages = [r.message for r in outcome.results]
    assert "column 'gone' is not in the batch" in messages[0]
    assert "raised ValueError: no" in messages[1]
    assert "returns no column of the batch" in messages[2]
    assert "got 1 values for 6 rows" in messages[3]
    with pytest.raises(QualityFailed, match="4 checks failed") as info:
        outcome.raise_for_failures()
    # Every failure is reported together, naming the subject, the check and the column.
    for name in ("not_null(gone)", "python(boom)", "counted", "short"):
        assert f"check {name!r}" in str(info.value)


def test_sql_check_matches_rows_by_the_columns_it_returns(con: duckdb.DuckDBPyConnection) -> None:
    rule = checks.sql(
        "SELECT status FROM {rows} GROUP BY status HAVING count(*) > 1",
        name="common_status",
        severity="quarantine",
    )
    outcome = run(con, [rule])
    assert sorted(r["status"] for r in outcome.quarantined.to_pylist()) == [
        "new",
        "new",
        "paid",
        "paid",
    ]


def test_no_checks_and_release(con: duckdb.DuckDBPyConnection) -> None:
    outcome = run(con, [])
    assert outcome.relation == "batch"
    assert outcome.rows_in == 6
    assert outcome.quarantined.num_rows == 0
    flagged = run(con, [checks.not_null("id", severity="quarantine")])
    flagged.release()
    temporary = con.sql(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__hw_q%'"
    ).fetchall()[0][0]
    views = con.sql(
        "SELECT count(*) FROM duckdb_views() WHERE view_name LIKE '__hw_q%'"
    ).fetchall()[0][0]
    assert (temporary, views) == (0, 0)


def test_throughput_is_vectorised(con: duckdb.DuckDBPyConnection) -> None:
    # Not a timing (those live in benchmarks/): a python check over 300k rows is called per
    # Arrow batch, a handful of times, not once per row.
    con.execute("CREATE TABLE big AS SELECT range AS id FROM range(300000)")
    calls: list[int] = []

    def count(batch: pa.RecordBatch) -> pa.Array:
        calls.append(batch.num_rows)
        return pc.greater_equal(batch["id"], 0)

    outcome = evaluate(con, [checks.python(count)], "big", subject="t", run_id="r")
    assert outcome.results[0].passed
    assert sum(calls) == 300_000
    assert len(calls) <= 10


# ---------------------------------------------------------------------- property
ROW_RULES: list[tuple[str, Any, Any]] = [
    # (name, check builder (severity, mostly) -> check, Python reference of a failing row, given
    # the row and the batch)
    ("n", lambda s, m: checks.not_null("n", severity=s, mostly=m), lambda r, _rows: r["n"] is None),
    (
        "between",
        lambda s, m: checks.between("n", -5, 5, severity=s, mostly=m),
        lambda r, _rows: r["n"] is not None and not -5 <= r["n"] <= 5,
    ),
    (
        "in_set",
        lambda s, m: checks.in_set("tag", ["a", "b"], severity=s, mostly=m),
        lambda r, _rows: r["tag"] is not None and r["tag"] not in ("a", "b"),
    ),
    (
        "matches",
        lambda s, m: checks.matches("tag", "^[ab]", severity=s, mostly=m),
        lambda r, _rows: r["tag"] is not None and not re.search("^[ab]", r["tag"]),
    ),
    (
        "max_length",
        lambda s, m: checks.max_length("tag", 2, severity=s, mostly=m),
        lambda r, _rows: r["tag"] is not None and len(r["tag"]) > 2,
    ),
    (
        "expression",
        lambda s, m: checks.expression("n <> 0", severity=s, mostly=m),
        lambda r, _rows: r["n"] == 0,
    ),
    (
        "unique",
        lambda s, m: checks.unique("tag", severity=s, mostly=m),
        lambda r, rows: r["tag"] is not None and sum(x["tag"] == r["tag"] for x in rows) > 1,
    ),
    (
        "python",
        lambda s, m: checks.python(
            lambda b: pc.invert(pc.fill_null(pc.equal(b["n"], 1), False)), severity=s, mostly=m
        ),
        lambda r, _rows: r["n"] == 1,
    ),
]

rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "n": st.one_of(st.none(), st.integers(-10, 10)),
            "tag": st.one_of(st.none(), st.sampled_from(["a", "b", "c", "ab", "abc", "zz"])),
        }
    ),
    max_size=40,
)
choice_strategy = st.lists(
    st.tuples(
        st.sampled_from(range(len(ROW_RULES))),
        st.sampled_from(["warn", "quarantine", "fail"]),
        st.one_of(st.none(), st.sampled_from([0.5, 0.9, 1.0])),
    ),
    max_size=len(ROW_RULES),
    unique_by=lambda c: c[0],
)


@settings(max_examples=150, deadline=None)
@given(rows=rows_strategy, choices=choice_strategy)
def test_rows_out_plus_rows_quarantined_is_rows_in(
    rows: list[dict[str, Any]], choices: list[tuple[int, str, float | None]]
) -> None:
    rules = [ROW_RULES[i][1](severity, mostly) for i, severity, mostly in choices]
    references = [ROW_RULES[i][2] for i, _, _ in choices]
    table = pa.table(
        {
            "k": pa.array(range(len(rows)), pa.int64()),
            "n": pa.array([r["n"] for r in rows], pa.int64()),
            "tag": pa.array([r["tag"] for r in rows], pa.string()),
        }
    )
    connection = duckdb.connect()
    try:
        connection.register("batch", table)
        outcome = evaluate(connection, rules, "batch", subject="t", run_id="r")
        passed = connection.sql(f"SELECT k FROM {outcome.relation}").to_arrow_table()
        quarantined = outcome.quarantined
        out_keys = passed.column("k").to_pylist()
        bad_keys = quarantined.column("k").to_pylist()
        # Nothing lost, nothing doubled.
        assert len(out_keys) + len(bad_keys) == len(rows) == outcome.rows_in
        assert sorted(out_keys + bad_keys) == list(range(len(rows)))
        assert outcome.rows_quarantined == len(bad_keys)
        # Exactly the rows failing a quarantining check are set aside, named by the first.
        acting = [
            (rule, ref)
            for rule, ref, result in zip(rules, references, outcome.results, strict=True)
            if result.action == "quarantined"
        ]
        by_key = dict(zip(bad_keys, quarantined.column("_check").to_pylist(), strict=True))
        for key, row in enumerate(rows):
            failed = [rule.name for rule, ref in acting if ref(row, rows)]
            assert by_key.get(key) == (failed[0] if failed else None)
        for rule, ref, result in zip(rules, references, outcome.results, strict=True):
            assert result.rows_failed == sum(1 for row in rows if ref(row, rows)), rule.name
    finally:
        connection.close()


def test_sql_that_breaks_on_the_data_stops_with_a_clear_error(
    con: duckdb.DuckDBPyConnection,
) -> None:
    with pytest.raises(QualityFailed, match="could not be evaluated on this batch: Conversion"):
        run(con, [checks.expression("CAST(status AS INT) > 0", name="numeric_status")])
