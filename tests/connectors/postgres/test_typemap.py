"""The PostgreSQL type mapping, end to end: every common type, NULLs, and the types refused."""

from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from headwater.connectors import open_connector
from headwater.errors import DefinitionError
from tests.connectors.postgres.test_reader import make_store, sql

pytestmark = pytest.mark.postgres

TYPES_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.typed (
    id bigint PRIMARY KEY,
    event_at timestamptz NOT NULL,
    i2 smallint, i4 integer, i8 bigint,
    n122 numeric(12, 2), nu numeric, n50 numeric(50, 5), nneg numeric(5, -2),
    r4 real, f8 double precision, b boolean,
    t text, vc varchar(10), c char(3), bin bytea,
    d date, tm time, ts timestamp, tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb,
    ai integer[], texts text[], an numeric(10, 2)[], ats timestamptz[],
    e mood, ae mood[]
)
"""

# Written from a session in New York: naive timestamptz literals are New York time.
ROWS = """
INSERT INTO public.typed VALUES
(1, '2024-03-01 12:00', -32768, 2147483647, -9223372036854775808,
 1234567890.12, 3.141592653589793238, 123456789012345678901234567890123.12345, 12300,
 1.5, 0.1, true,
 'héllo, "x"', 'v', 'ab', '\\x00deadbeef',
 '2024-02-29', '12:34:56.789', '2024-03-01 12:34:56.789', '2024-07-01 08:00',
 '1 year 2 months 3 days 04:05:06.789',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": [1, "x"],  "a": null}', '{"b": 1,  "a": 2}',
 '{1,NULL,3}', '{"x","",NULL}', '{1.50,NULL,-0.01}', '{"2024-03-01 12:00"}',
 'happy', '{sad,NULL,ok}'),
(2, '2024-03-02 00:30', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL),
(3, '2024-03-03 00:00', 0, 0, 0, -0.01, -12345678901234567890.000000000000000001, 0, 0,
 'NaN', '-Infinity', false, '', '', '', '', '0001-01-01', '00:00', '1900-01-01',
 '1970-01-01 00:00+00',
 '-1 day', '00000000-0000-0000-0000-000000000000', '[]', '{}',
 '{}', '{}', '{}', '{}', 'sad', '{}')
"""

EXPECTED_TYPES = {
    "id": (pa.int64(), "int8"),
    "event_at": (pa.timestamp("us", tz="UTC"), "timestamptz"),
    "i2": (pa.int16(), "int2"),
    "i4": (pa.int32(), "int4"),
    "i8": (pa.int64(), "int8"),
    "n122": (pa.decimal128(12, 2), "numeric(12,2)"),
    "nu": (pa.decimal128(38, 18), "numeric"),
    "n50": (pa.decimal128(38, 5), "numeric(50,5)"),
    "nneg": (pa.decimal128(7, 0), "numeric(5,-2)"),
    "r4": (pa.float32(), "float4"),
    "f8": (pa.float64(), "float8"),
    "b": (pa.bool_(), "bool"),
    "t": (pa.string(), "text"),
    "vc": (pa.string(), "varchar"),
    "c": (pa.string(), "bpchar"),
    "bin": (pa.binary(), "bytea"),
    "d": (pa.date32(), "date"),
    "tm": (pa.time64("us"), "time"),
    "ts": (pa.timestamp("us"), "timestamp"),
    "tstz": (pa.timestamp("us", tz="UTC"), "timestamptz"),
    "iv": (pa.month_day_nano_interval(), "interval"),
    "u": (pa.string(), "uuid"),
    "j": (pa.string(), "json"),
    "jb": (pa.string(), "jsonb"),
    "ai": (pa.list_(pa.int32()), "int4[]"),
    "texts": (pa.list_(pa.string()), "text[]"),
    "an": (pa.list_(pa.decimal128(10, 2)), "numeric(10,2)[]"),
    "ats": (pa.list_(pa.timestamp("us", tz="UTC")), "timestamptz[]"),
    "e": (pa.string(), "mood"),
    "ae": (pa.list_(pa.string()), "mood[]"),
}

# The offline store (Delta) holds neither time nor interval: the view turns them into text.
AS_TEXT = {"tm", "iv"}
COLUMNS = [name for name in EXPECTED_TYPES if name not in ("id", "event_at")]
FEATURES = {c: f"CAST({c} AS VARCHAR)" if c in AS_TEXT else c for c in COLUMNS}

TYPED_DEFS = f"""
from headwater import Entity, FeatureView, PostgresSource

item = Entity("item", join_keys=["id"])
typed = PostgresSource(
    "typed", connection="app_db", table="public.typed", timestamp_field="event_at"
)
typed_view = FeatureView("typed_view", entity=item, source=typed, features={FEATURES!r})
"""

NY = timedelta(hours=5)  # New York is UTC-5 in early March (EST)

ROW_1 = {
    "id": 1,
    "event_timestamp": datetime(2024, 3, 1, 12, tzinfo=UTC) + NY,
    "i2": -32768,
    "i4": 2147483647,
    "i8": -9223372036854775808,
    "n122": Decimal("1234567890.12"),
    "nu": Decimal("3.141592653589793238"),
    "n50": Decimal("123456789012345678901234567890123.12345"),
    "nneg": Decimal("12300"),
    "r4": 1.5,
    "f8": 0.1,
    "b": True,
    "t": 'héllo, "x"',
    "vc": "v",
    "c": "ab ",
    "bin": b"\x00\xde\xad\xbe\xef",
    "d": date(2024, 2, 29),
    "tm": "12:34:56.789",
    "ts": datetime(2024, 3, 1, 12, 34, 56, 789_000),
    "tstz": datetime(2024, 7, 1, 12, tzinfo=UTC),  # EDT, UTC-4, in July
    "iv": "1 year 2 months 3 days 04:05:06.789",
    "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "j": '{"b": [1, "x"],  "a": null}',  # json keeps the text as written
    "jb": '{"a": 2, "b": 1}',  # jsonb is normalised by the server
    "ai": [1, None, 3],
    "texts": ["x", "", None],
    "an": [Decimal("1.50"), None, Decimal("-0.01")],
    "ats": [datetime(2024, 3, 1, 12, tzinfo=UTC) + NY],
    "e": "happy",
    "ae": ["sad", None, "ok"],
}


def test_every_common_type_reads_with_its_arrow_type_and_exact_values(
    tmp_path: Path, pg_dsn: str
) -> None:
    (database,) = sql(pg_dsn, "SELECT current_database()")[0]
    # Neither the database's zone nor the writer's may leak into the values read.
    sql(pg_dsn, f"ALTER DATABASE \"{database}\" SET timezone TO 'Asia/Kolkata'")
    sql(pg_dsn, TYPES_DDL)
    sql(pg_dsn, "SET TimeZone = 'America/New_York';" + ROWS)
    store = make_store(tmp_path, pg_dsn, TYPED_DEFS)

    connector = open_connector(store.definitions.sources["typed"], store.config)
    schema = connector.schema()
    assert schema.names == list(EXPECTED_TYPES)
    for field in schema:
        arrow, label = EXPECTED_TYPES[field.name]
        assert field.type == arrow, field.name
        assert field.metadata == {b"pg_type": label.encode()}, field.name

    # time and interval keep their exact values in the connector's stream.
    con = duckdb.connect()
    try:
        scan = connector.scan(con)
        read = con.sql(f"SELECT id, tm, iv FROM {scan.relation} ORDER BY id").to_arrow_table()
    finally:
        con.close()
    assert read.column("tm").type == pa.time64("us")
    assert read.column("tm").to_pylist() == [time(12, 34, 56, 789_000), None, time(0)]
    months_days_nanos = [None if v is None else tuple(v) for v in read.column("iv").to_pylist()]
    assert months_days_nanos == [(14, 3, 14_706_789_000_000), None, (0, -1, 0)]

    store.apply()
    (result,) = store.run()
    assert (result.status, result.rows_in, result.inserted) == ("success", 3, 3)
    table = store.offline.dataset("typed_view").to_table()
    for name in COLUMNS:
        got = table.schema.field(name).type
        want = pa.string() if name in AS_TEXT else EXPECTED_TYPES[name][0]
        if pa.types.is_list(want):  # list field names differ between Arrow writers
            assert pa.types.is_list(got) and got.value_type == want.value_type, name
        else:
            assert got == want, name

    rows = {row["id"]: row for row in table.to_pylist()}
    for row in rows.values():
        del row["_seq"], row["event_date"]
    assert rows[1] == ROW_1
    assert rows[2] == {"id": 2, "event_timestamp": datetime(2024, 3, 2, 5, 30, tzinfo=UTC)} | {
        name: None for name in COLUMNS
    }
    third = rows[3]
    assert third["nu"] == Decimal("-12345678901234567890.000000000000000001")
    assert str(third["r4"]) == "nan" and third["f8"] == float("-inf")
    assert (third["t"], third["bin"], third["c"]) == ("", b"", "   ")
    assert third["d"] == date(1, 1, 1)
    assert third["tstz"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert third["iv"] == "-1 day"
    assert third["u"] == "00000000-0000-0000-0000-000000000000"
    assert (third["j"], third["jb"]) == ("[]", "{}")
    assert [third[c] for c in ("ai", "texts", "an", "ats", "ae")] == [[], [], [], [], []]
    store.close()


ONE_COLUMN_DEFS = """
from headwater import Entity, FeatureView, PostgresSource

item = Entity("item", join_keys=["id"])
odd = PostgresSource("odd", connection="app_db", timestamp_field="event_at", QUERY)
odd_view = FeatureView("odd_view", entity=item, source=odd, features={"v": "v"})
"""


def odd_store(tmp_path: Path, dsn: str, query: str):  # type: ignore[no-untyped-def]
    defs = ONE_COLUMN_DEFS.replace("QUERY", f"query={query!r}")
    return make_store(tmp_path, dsn, textwrap.dedent(defs))


@pytest.mark.parametrize(
    ("value", "column_type", "message"),
    [
        ("1.0000000000000000001", "numeric", "does not fit decimal128(38, 18)"),
        ("123456789012345678901", "numeric", "does not fit decimal128(38, 18)"),
        ("'NaN'", "numeric", "value NaN is not a finite number"),
        ("'infinity'", "timestamptz", "'infinity', '-infinity'"),
        ("'-infinity'", "date", "'infinity', '-infinity'"),
    ],
)
def test_values_that_do_not_fit_fail_the_run_naming_the_column(
    tmp_path: Path, pg_dsn: str, value: str, column_type: str, message: str
) -> None:
    sql(pg_dsn, f"CREATE TABLE t (id int, event_at timestamptz, v {column_type})")
    sql(pg_dsn, f"INSERT INTO t VALUES (1, now(), NULL), (2, now(), {value})")
    store = odd_store(tmp_path, pg_dsn, "SELECT * FROM t")
    store.apply()
    with pytest.raises(DefinitionError) as caught:
        store.run()
    text = str(caught.value)
    assert "source 'odd': column 'v'" in text and message in text
    assert "cast it in query=" in text or "in query=" in text
    (failed,) = store.registry.runs(view="odd_view")
    assert failed.status == "failed" and "column 'v'" in (failed.error or "")
    store.close()


@pytest.mark.parametrize(
    ("column_type", "value"), [("point", "'(1,2)'"), ("tsvector", "'a fat cat'")]
)
def test_an_unsupported_type_names_source_column_and_workaround(
    tmp_path: Path, pg_dsn: str, column_type: str, value: str
) -> None:
    sql(pg_dsn, f"CREATE TABLE t (id int, event_at timestamptz, v {column_type})")
    sql(pg_dsn, f"INSERT INTO t VALUES (1, '2024-03-01', {value})")
    with pytest.raises(DefinitionError) as caught:
        odd_store(tmp_path / "raw", pg_dsn, "SELECT * FROM t").apply()
    text = str(caught.value)
    assert f"source 'odd': column 'v' has the PostgreSQL type '{column_type}'" in text
    assert 'cast it in query=, e.g. SELECT ..., "v"::text AS "v"' in text

    store = odd_store(tmp_path / "cast", pg_dsn, "SELECT id, event_at, v::text AS v FROM t")
    store.apply()
    (result,) = store.run()
    assert result.rows_in == 1
    table = store.offline.dataset("odd_view").to_table()
    assert table.column("v").to_pylist() == [
        sql(pg_dsn, f"SELECT {value}::{column_type}::text")[0][0]
    ]
    store.close()
