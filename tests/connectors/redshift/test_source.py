"""RedshiftSource: declarations, generated SQL, the protocol path, UNLOAD read-back and IAM.

No Redshift cluster runs here. Redshift speaks the PostgreSQL protocol, so the protocol path
runs against the local PostgreSQL server; UNLOAD statements are checked as exact text, and the
rows Redshift would unload are produced by evaluating the statement's quoted SELECT on
PostgreSQL and writing Parquet to an S3-compatible server (moto) started by the tests.
"""

from __future__ import annotations

import re
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import headwater
from headwater.config import ProjectConfig
from headwater.connectors import open_connector
from headwater.connectors.redshift.source import (
    RedshiftConnector,
    build_unload_select,
    build_unload_sql,
    cluster_credentials,
    quote_string,
    render_params,
    sql_literal,
)
from headwater.connectors.tables import decode_cursor
from headwater.definitions import RedshiftSource
from headwater.errors import ConfigError, ConnectionFailed, DefinitionError
from headwater.plugins import CONNECTORS
from tests.helpers import offline_rows

ROLE = "arn:aws:iam::123456789012:role/unload"
U0 = datetime(2024, 4, 1, tzinfo=UTC)
EVENTS_DDL = """
CREATE TABLE public.events (
    event_id bigint PRIMARY KEY, user_id bigint NOT NULL, amount double precision,
    note text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
)
"""
# (event_id, user_id, amount, note, created_at, updated_at); 2 and 3 share the greatest cursor.
EVENTS = [
    (1, 1, 10.5, "plain", U0, U0 + timedelta(seconds=1)),
    (2, 1, 2.25, "it's", U0 + timedelta(hours=1), U0 + timedelta(seconds=2, microseconds=7)),
    (3, 2, 7.0, "back\\slash", U0 + timedelta(hours=2), U0 + timedelta(seconds=2, microseconds=7)),
]
DEFS = """
from headwater import Entity, FeatureView, RedshiftSource

event = Entity("event", join_keys=["event_id"])
events = RedshiftSource("events", connection="warehouse", table="public.events",
                        timestamp_field="created_at", cursor_field="updated_at",
                        primary_key=["event_id"]{unload})
event_facts = FeatureView("event_facts", entity=event, source=events,
                          features={{"user_id": "user_id", "amount": "amount", "note": "note"}})
"""


# ---------------------------------------------------------------------- helpers and fixtures
def sql(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def insert_events(dsn: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO public.events VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) "
            "DO UPDATE SET amount = EXCLUDED.amount, updated_at = EXCLUDED.updated_at",
            rows,
        )


def warehouse(dsn: str, **extra: Any) -> dict[str, Any]:
    """A ``type: redshift`` connection pointing at the local PostgreSQL database of ``dsn``."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    conn = {"type": "redshift", "host": info["host"], "port": int(info.get("port", 5432))}
    conn.update(database=info["dbname"], user=info.get("user", "postgres"), **extra)
    return conn


def project(connection: dict[str, Any]) -> ProjectConfig:
    return ProjectConfig.model_validate({"project": "t", "connections": {"warehouse": connection}})


def source(**kwargs: Any) -> RedshiftSource:
    args: dict[str, Any] = {"connection": "warehouse", "timestamp_field": "created_at"}
    args.update(kwargs)
    return RedshiftSource(args.pop("name", "events"), **args)


def make_store(
    root: Path, connection: dict[str, Any], unload: dict[str, str] | None = None
) -> headwater.FeatureStore:
    root.mkdir(parents=True, exist_ok=True)
    config = {"project": "t", "connections": {"warehouse": connection}}
    (root / "headwater.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    text = DEFS.format(unload="" if unload is None else f", unload={unload!r}")
    (root / "defs.py").write_text(textwrap.dedent(text).lstrip())
    return headwater.FeatureStore(root)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """An S3 / Redshift API server (moto) on a free local port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """AWS clients in this test talk to moto with dummy credentials; returns its URL."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }.items():
        monkeypatch.setenv(key, value)
    return moto_url


@pytest.fixture
def bucket(aws: str) -> str:
    import boto3

    name = f"hw-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=name)
    return name


def s3_keys(bucket: str) -> list[str]:
    import boto3

    listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=bucket)
    keys = (item["Key"] for item in listed.get("Contents", []))
    return sorted(key for key in keys if not key.endswith("/"))  # not pyarrow's folder markers


_UNLOAD = re.compile(
    r"^UNLOAD \((?P<select>'(?:[^'\\]|''|\\.)*')\) TO '(?P<to>[^']*)' IAM_ROLE '[^']*' "
    r"FORMAT AS PARQUET ALLOWOVERWRITE PARALLEL ON( REGION AS '[a-z0-9-]+')?$",
    re.DOTALL,
)


def redshift_reading(dsn: str, quoted: str) -> str:
    """How Redshift reads the literal ``quoted``: PostgreSQL with backslash escapes on."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET standard_conforming_strings = off")
        conn.execute("SET escape_string_warning = off")
        (text,) = conn.execute(f"SELECT {quoted}".encode()).fetchone()  # type: ignore[misc]
    return str(text)


class StubUnload(RedshiftConnector):
    """Runs what Redshift would: the UNLOAD's SELECT (on PostgreSQL), Parquet parts to S3."""

    dsn = ""
    statements: list[str] = []

    def execute_unload(self, statement: str) -> None:
        from pyarrow import fs

        StubUnload.statements.append(statement)
        match = _UNLOAD.match(statement)
        assert match, statement
        select = redshift_reading(self.dsn, match["select"])
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            cur = conn.execute(select.encode())
            names = [col.name for col in cur.description or []]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        s3 = fs.S3FileSystem(scheme="http", endpoint_override=self._endpoint(), region="us-east-1")
        folder = match["to"].removeprefix("s3://")
        for part, start in enumerate(range(0, len(rows), 2)):  # two rows per slice file
            table = pa.Table.from_pylist(rows[start : start + 2])
            pq.write_table(table, f"{folder}{part:04d}_part_00.parquet", filesystem=s3)

    def _endpoint(self) -> str:
        return (self.source.unload or {})["endpoint_url"].removeprefix("http://")


@pytest.fixture
def stub(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> type[StubUnload]:
    monkeypatch.setattr(StubUnload, "dsn", pg_dsn)
    monkeypatch.setattr(StubUnload, "statements", [])
    return StubUnload


# ---------------------------------------------------------------------- declarations
def test_a_redshift_source_declares_like_a_postgres_source() -> None:
    src = source(
        table="public.events",
        cursor_field="updated_at",
        primary_key="event_id",
        unload={"s3_path": "s3://my-bucket/exports", "iam_role": ROLE, "region": "eu-west-1"},
    )
    assert (src.kind, src.incremental, src.primary_key, src.batch_size) == (
        "redshift",
        True,
        ["event_id"],
        100_000,
    )
    assert src.unload == {
        "s3_path": "s3://my-bucket/exports/",
        "iam_role": ROLE,
        "region": "eu-west-1",
    }
    spec = src.to_spec()
    assert (spec["kind"], spec["connection"], spec["unload"]["s3_path"]) == (
        "redshift",
        "warehouse",
        "s3://my-bucket/exports/",
    )
    assert source(query="SELECT 1", params={"a": 1}).unload is None
    assert isinstance(headwater.RedshiftSource, type)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of table= or query="),
        ({"table": "t", "query": "SELECT 1"}, "exactly one of table= or query="),
        ({"table": "t", "cursor_field": "u"}, "no primary_key"),
        ({"table": "t", "connection": ""}, "has no connection"),
        ({"table": "t", "unload": "s3://b/p/"}, "must be a dict"),
        ({"table": "t", "unload": {"s3_path": "s3://bkt/p/"}}, "needs iam_role"),
        ({"table": "t", "unload": {"iam_role": ROLE}}, "needs s3_path"),
        ({"table": "t", "unload": {"s3_path": "s3://bkt/", "iam_role": ROLE, "x": "1"}}, "'x'"),
        ({"table": "t", "unload": {"s3_path": "https://bkt/p/", "iam_role": ROLE}}, "S3 folder"),
        ({"table": "t", "unload": {"s3_path": "s3://Bad_Bucket/", "iam_role": ROLE}}, "S3"),
        ({"table": "t", "unload": {"s3_path": "s3://bkt/it's/", "iam_role": ROLE}}, "S3 folder"),
        ({"table": "t", "unload": {"s3_path": "s3://bkt/", "iam_role": "unload"}}, "role ARN"),
        (
            {
                "table": "t",
                "unload": {"s3_path": "s3://bkt/", "iam_role": "arn:aws:iam::123:role/u"},
            },
            "12-digit account",
        ),
        (
            {"table": "t", "unload": {"s3_path": "s3://bkt/", "iam_role": ROLE + "'; DROP"}},
            "role ARN",
        ),
        (
            {"table": "t", "unload": {"s3_path": "s3://bkt/", "iam_role": ROLE, "region": "mars"}},
            "not an AWS region",
        ),
        (
            {"table": "t", "unload": {"s3_path": "s3://bkt/", "iam_role": ROLE, "region": 1}},
            "must be a string",
        ),
    ],
)
def test_bad_declarations_name_the_problem(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)):
        source(**kwargs)


def test_chained_roles_and_partition_prefixes_are_accepted() -> None:
    chained = f"{ROLE},arn:aws-cn:iam::210987654321:role/path/to/writer"
    src = source(table="t", unload={"s3_path": "s3://b.kt/a/b=1/", "iam_role": chained})
    assert src.unload is not None and src.unload["iam_role"] == chained


# ---------------------------------------------------------------------- SQL literals
AWARE = datetime(2024, 4, 1, 2, 0, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
LITERALS: list[tuple[Any, str]] = [
    (None, "NULL"),
    (True, "TRUE"),
    (False, "FALSE"),
    (0, "0"),
    (42, "42"),
    (-7, "(-7)"),
    (2**63 - 1, "9223372036854775807"),
    (0.1, "0.1"),
    (-2.5, "(-2.5)"),
    (1e-7, "1e-07"),
    (1.5e300, "1.5e+300"),
    (Decimal("10.50"), "10.50"),
    (Decimal("-0.001"), "(-0.001)"),
    (Decimal("1E+3"), "1000"),
    (date(2024, 2, 29), "CAST('2024-02-29' AS DATE)"),
    (date(1, 1, 1), "CAST('0001-01-01' AS DATE)"),
    (datetime(2024, 4, 1, 0, 0, 5), "CAST('2024-04-01 00:00:05.000000' AS TIMESTAMP)"),
    (datetime(2024, 4, 1, 0, 0, 5, 7), "CAST('2024-04-01 00:00:05.000007' AS TIMESTAMP)"),
    (AWARE, "CAST('2024-04-01 00:00:05.123456+00' AS TIMESTAMPTZ)"),
    (
        datetime(1969, 12, 31, 23, 59, tzinfo=UTC),
        "CAST('1969-12-31 23:59:00.000000+00' AS TIMESTAMPTZ)",
    ),
    (time(23, 59, 59, 5), "CAST('23:59:59.000005' AS TIME)"),
    ("", "''"),
    ("plain", "'plain'"),
    ("it's", "'it''s'"),
    ("''", "''''''"),
    ("back\\slash", "('back' || CHR(92) || 'slash')"),
    ("\\", "('' || CHR(92) || '')"),
    ("\\'", "('' || CHR(92) || '''')"),
    ("a'\\\\'b", "('a''' || CHR(92) || '' || CHR(92) || '''b')"),
    ("line\nbreak\ttab", "'line\nbreak\ttab'"),
    ("naïve ☃ 😀", "'naïve ☃ 😀'"),
    ("x'); DROP TABLE t; --", "'x''); DROP TABLE t; --'"),
    ("%(p)s %%", "'%(p)s %%'"),
]


@pytest.mark.parametrize(("value", "literal"), LITERALS, ids=[repr(v) for v, _ in LITERALS])
def test_values_render_as_exact_literals(value: Any, literal: str) -> None:
    assert sql_literal(value) == literal


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        Decimal("NaN"),
        Decimal("-Infinity"),
        "a\x00b",
        b"bytes",
        [1],
        time(1, tzinfo=UTC),
        timedelta(1),
        object(),
    ],
    ids=repr,
)
def test_values_without_a_safe_literal_are_refused(value: Any) -> None:
    with pytest.raises(DefinitionError):
        sql_literal(value)


def test_quote_string_doubles_quotes_and_backslashes() -> None:
    assert quote_string("") == "''"
    assert quote_string("a'b") == "'a''b'"
    assert quote_string("c:\\x\\'") == "'c:\\\\x\\\\'''"


def test_params_render_into_the_query() -> None:
    query = "SELECT * FROM t WHERE a = %(a)s AND b LIKE 'x%%' AND c >= %(c)s AND d = %(a)s"
    assert render_params(query, {"a": "O'Hara", "c": -1}) == (
        "SELECT * FROM t WHERE a = 'O''Hara' AND b LIKE 'x%' AND c >= (-1) AND d = 'O''Hara'"
    )
    assert render_params("SELECT x - %(n)s", {"n": -5}) == "SELECT x - (-5)"
    assert render_params("SELECT x -%(n)s", {"n": -5}) == "SELECT x -(-5)"  # not a -- comment
    assert render_params("SELECT '100%' AS p", {}) == "SELECT '100%' AS p"  # no params: as is
    with pytest.raises(DefinitionError, match=r"%\(b\)s has no value"):
        render_params("SELECT %(b)s", {"a": 1})
    with pytest.raises(DefinitionError, match="lone '%'"):
        render_params("SELECT 5 % 2, %(a)s", {"a": 1})


# ---------------------------------------------------------------------- golden UNLOAD text
TO = "s3://bucket/prefix/events/run/"


def test_unload_of_a_whole_table() -> None:
    select = build_unload_select(
        table="sales.events", query=None, params={}, cursor_field=None, mark=None
    )
    assert build_unload_sql(select, to=TO, iam_role=ROLE) == (
        "UNLOAD ('SELECT * FROM \"sales\".\"events\"') TO 's3://bucket/prefix/events/run/' "
        "IAM_ROLE 'arn:aws:iam::123456789012:role/unload' "
        "FORMAT AS PARQUET ALLOWOVERWRITE PARALLEL ON"
    )


def test_unload_of_a_table_from_a_timestamp_mark() -> None:
    select = build_unload_select(
        table="events", query=None, params={}, cursor_field="updated_at", mark=AWARE
    )
    assert build_unload_sql(select, to=TO, iam_role=ROLE, region="eu-west-1") == (
        'UNLOAD (\'SELECT * FROM "events" WHERE "updated_at" >= '
        "CAST(''2024-04-01 00:00:05.123456+00'' AS TIMESTAMPTZ)') "
        "TO 's3://bucket/prefix/events/run/' IAM_ROLE 'arn:aws:iam::123456789012:role/unload' "
        "FORMAT AS PARQUET ALLOWOVERWRITE PARALLEL ON REGION AS 'eu-west-1'"
    )


def test_unload_of_a_query_with_params_and_a_string_mark() -> None:
    select = build_unload_select(
        table=None,
        query="SELECT * FROM t WHERE name <> %(name)s AND day >= %(day)s AND tag LIKE 'a%%'",
        params={"name": "O'Brien\\", "day": date(2024, 1, 31)},
        cursor_field="version",
        mark="v'2",
    )
    assert build_unload_sql(select, to=TO, iam_role=ROLE) == (
        "UNLOAD ('SELECT * FROM (SELECT * FROM t WHERE name <> "
        "(''O''''Brien'' || CHR(92) || '''') AND day >= CAST(''2024-01-31'' AS DATE) "
        "AND tag LIKE ''a%'') AS q WHERE \"version\" >= ''v''''2''') "
        "TO 's3://bucket/prefix/events/run/' IAM_ROLE 'arn:aws:iam::123456789012:role/unload' "
        "FORMAT AS PARQUET ALLOWOVERWRITE PARALLEL ON"
    )


def test_unload_keeps_backslashes_of_the_query_text() -> None:
    select = build_unload_select(
        table=None, query="SELECT 'a\\nb' AS s", params={}, cursor_field="n", mark=Decimal("-1.5")
    )
    assert build_unload_sql(select, to=TO, iam_role=ROLE) == (
        "UNLOAD ('SELECT * FROM (SELECT ''a\\\\nb'' AS s) AS q WHERE \"n\" >= (-1.5)') "
        "TO 's3://bucket/prefix/events/run/' IAM_ROLE 'arn:aws:iam::123456789012:role/unload' "
        "FORMAT AS PARQUET ALLOWOVERWRITE PARALLEL ON"
    )


# ---------------------------------------------------------------------- literals on a real server
TYPED = [
    (v, t)
    for v, t in [
        (True, "boolean"),
        (-7, "bigint"),
        (2**63 - 1, "bigint"),
        (0.1, "double precision"),
        (-2.5, "double precision"),
        (1e-7, "double precision"),
        (1.5e300, "double precision"),
        (Decimal("-0.001"), "numeric(12, 4)"),
        (Decimal("10.50"), "numeric"),
        (date(2024, 2, 29), "date"),
        (datetime(2024, 4, 1, 0, 0, 5, 7), "timestamp"),
        (AWARE, "timestamptz"),
        (time(23, 59, 59, 5), "time"),
    ]
    + [(v, "text") for v, lit in LITERALS if isinstance(v, str)]
]


@pytest.mark.postgres
def test_doubly_quoted_literals_select_exactly_their_values(pg_dsn: str) -> None:
    """Each value, rendered into an UNLOAD as a cursor mark, unquoted the way Redshift reads
    the outer literal and run on a real server, compares equal to the value bound natively."""
    for value, sql_type in TYPED:
        select = build_unload_select(
            table=None,
            query="SELECT %(v)s::" + sql_type + " AS c",
            params={"v": value},
            cursor_field="c",
            mark=value,
        )
        match = _UNLOAD.match(build_unload_sql(select, to=TO, iam_role=ROLE))
        assert match, value
        assert redshift_reading(pg_dsn, match["select"]) == select, value
        template = f"SELECT c = %s::{sql_type}, c FROM ({select.replace('%', '%%')}) AS x"
        rows = sql(pg_dsn, template, [value])
        assert rows == [(True, value)], (value, select)


# ---------------------------------------------------------------------- protocol path
@pytest.mark.postgres
def test_protocol_reads_in_full_then_by_cursor(tmp_path: Path, pg_dsn: str) -> None:
    sql(pg_dsn, EVENTS_DDL)
    insert_events(pg_dsn, EVENTS)
    store = make_store(tmp_path / "p", warehouse(pg_dsn))
    try:
        store.apply()
        assert [r.rows_in for r in store.run()] == [3]
        mark = decode_cursor(store.registry.get_checkpoint("cursor:event_facts"))
        assert mark == U0 + timedelta(seconds=2, microseconds=7)
        insert_events(pg_dsn, [(4, 3, 1.0, None, U0, U0 + timedelta(seconds=9))])
        insert_events(pg_dsn, [(1, 1, 99.0, "plain", U0, U0 + timedelta(seconds=8))])
        assert [r.rows_in for r in store.run()] == [4]  # 2 boundary rows, 1 new, 1 updated
        mark = decode_cursor(store.registry.get_checkpoint("cursor:event_facts"))
        assert mark == U0 + timedelta(seconds=9)
        rows = offline_rows(store, "event_facts")
    finally:
        store.close()
    assert sorted((r["event_id"], r["amount"], r["note"]) for r in rows) == [
        (1, 99.0, "plain"),
        (2, 2.25, "it's"),
        (3, 7.0, "back\\slash"),
        (4, 1.0, None),
    ]


@pytest.mark.postgres
def test_protocol_failures_are_one_line_and_hide_the_password() -> None:
    conn = {
        "type": "redshift",
        "host": "127.0.0.1",
        "port": 1,
        "database": "dev",
        "user": "u",
        "password": "s3cret-pw",
    }
    connector = open_connector(source(table="t"), project(conn))
    assert isinstance(connector, RedshiftConnector)
    assert CONNECTORS["redshift"] == "headwater.connectors.redshift.source:RedshiftConnector"
    with pytest.raises(ConnectionFailed) as info:
        connector.schema()
    assert "s3cret-pw" not in str(info.value) and "\n" not in str(info.value)
    assert "source 'events'" in str(info.value)


# ---------------------------------------------------------------------- unload path
def unload_options(bucket: str, endpoint: str) -> dict[str, str]:
    return {"s3_path": f"s3://{bucket}/exports/", "iam_role": ROLE, "endpoint_url": endpoint}


def read(connector: RedshiftConnector, checkpoint: Any = None) -> tuple[pa.Table, Any]:
    con = duckdb.connect()
    try:
        scan = connector.scan(con, checkpoint=checkpoint)
        table = con.sql(f"SELECT * FROM {scan.relation} ORDER BY event_id").to_arrow_table()
        assert scan.rows_read() == table.num_rows
        return table, scan.checkpoint()
    finally:
        con.close()


@pytest.mark.postgres
def test_unload_reads_parquet_back_from_s3_and_tracks_the_cursor(
    pg_dsn: str, bucket: str, aws: str, stub: type[StubUnload]
) -> None:
    sql(pg_dsn, EVENTS_DDL)
    insert_events(pg_dsn, EVENTS)
    src = source(
        table="public.events",
        cursor_field="updated_at",
        primary_key=["event_id"],
        unload=unload_options(bucket, aws),
    )
    connector = stub(src, project(warehouse(pg_dsn, region="us-east-1")))

    first, checkpoint = read(connector)
    assert first.column("event_id").to_pylist() == [1, 2, 3]
    assert first.column("note").to_pylist() == ["plain", "it's", "back\\slash"]
    assert decode_cursor(checkpoint) == U0 + timedelta(seconds=2, microseconds=7)
    (statement,) = stub.statements
    run = re.search(r"/events/([^/]+)/'", statement)
    assert run is not None
    assert statement == (
        'UNLOAD (\'SELECT * FROM "public"."events"\') '
        f"TO 's3://{bucket}/exports/events/{run[1]}/' IAM_ROLE '{ROLE}' "
        "FORMAT AS PARQUET ALLOWOVERWRITE PARALLEL ON"
    )
    assert s3_keys(bucket) == [
        f"exports/events/{run[1]}/0000_part_00.parquet",
        f"exports/events/{run[1]}/0001_part_00.parquet",
    ]

    insert_events(pg_dsn, [(4, 3, 1.0, "new", U0, U0 + timedelta(seconds=9))])
    second, checkpoint = read(connector, checkpoint)
    assert second.column("event_id").to_pylist() == [2, 3, 4]  # boundary rows re-read
    assert decode_cursor(checkpoint) == U0 + timedelta(seconds=9)
    assert (
        "WHERE \"updated_at\" >= CAST(''2024-04-01 00:00:02.000007+00'' AS TIMESTAMPTZ)"
        in (stub.statements[1])
    )
    keys = s3_keys(bucket)  # the first run's files were deleted when the second started
    assert len(keys) == 2 and all(run[1] not in key for key in keys)

    sql(pg_dsn, "DELETE FROM public.events")
    empty, checkpoint = read(connector, checkpoint)  # no files at all: schema over the protocol
    assert (empty.num_rows, empty.column_names[0]) == (0, "event_id")
    assert decode_cursor(checkpoint) == U0 + timedelta(seconds=9)
    assert s3_keys(bucket) == []


@pytest.mark.postgres
def test_unload_and_protocol_runs_give_the_same_offline_rows(
    tmp_path: Path,
    pg_dsn: str,
    bucket: str,
    aws: str,
    stub: type[StubUnload],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sql(pg_dsn, EVENTS_DDL)
    insert_events(pg_dsn, EVENTS)
    protocol = make_store(tmp_path / "protocol", warehouse(pg_dsn))
    monkeypatch.setitem(CONNECTORS, "redshift", f"{__name__}:StubUnload")
    unload = make_store(tmp_path / "unload", warehouse(pg_dsn), unload_options(bucket, aws))
    try:
        for store in (protocol, unload):
            store.apply()
            store.run()
        insert_events(pg_dsn, [(5, 9, -1.0, "late'", U0, U0 + timedelta(seconds=30))])
        assert [r.rows_in for r in protocol.run()] == [3]
        assert [r.rows_in for r in unload.run()] == [3]
        assert offline_rows(unload, "event_facts") == offline_rows(protocol, "event_facts")
        assert unload.registry.get_checkpoint("cursor:event_facts") == (
            protocol.registry.get_checkpoint("cursor:event_facts")
        )
        assert len(stub.statements) == 2
    finally:
        protocol.close()
        unload.close()


@pytest.mark.postgres
def test_unload_with_a_bad_cursor_or_unreachable_s3_says_so(
    pg_dsn: str, bucket: str, aws: str, stub: type[StubUnload]
) -> None:
    sql(pg_dsn, EVENTS_DDL)
    insert_events(pg_dsn, EVENTS)
    conn = project(warehouse(pg_dsn, region="us-east-1"))
    src = source(
        table="public.events",
        cursor_field="nope",
        primary_key=["event_id"],
        unload=unload_options(bucket, aws),
    )
    with pytest.raises(DefinitionError, match="cursor_field 'nope' is not a column"):
        read(stub(src, conn))
    closed = source(table="public.events", unload=unload_options(bucket, "http://127.0.0.1:1"))
    with pytest.raises(ConnectionFailed, match=f"S3 request under s3://{bucket}/exports/events/"):
        read(stub(closed, conn))
    assert len(stub.statements) == 1  # S3 failed before a second UNLOAD was issued


# ---------------------------------------------------------------------- IAM credentials
def test_iam_connections_use_temporary_cluster_credentials(aws: str) -> None:
    import boto3

    cluster = f"hw-{uuid.uuid4().hex[:8]}"
    boto3.client("redshift", region_name="eu-west-1").create_cluster(
        ClusterIdentifier=cluster,
        NodeType="ra3.xlplus",
        MasterUsername="admin",
        MasterUserPassword="Admin-Passw0rd",
        DBName="dev",
    )
    conn = {
        "type": "redshift",
        "host": f"{cluster}.example.eu-west-1.redshift.amazonaws.com",
        "database": "dev",
        "user": "alice",
        "iam": True,
        "cluster_identifier": cluster,
        "region": "eu-west-1",
        "options": {"sslmode": "require"},
    }
    connector = RedshiftConnector(source(table="t"), project(conn))
    config = connector.postgres_connection()
    params = psycopg.conninfo.conninfo_to_dict(config.dsn.get_secret_value())
    assert {k: params[k] for k in ("host", "port", "dbname", "user")} == {
        "host": conn["host"],
        "port": "5439",
        "dbname": "dev",
        "user": "IAM:alice",
    }
    assert len(params["password"]) == 32
    assert config.options["sslmode"].get_secret_value() == "require"
    assert params["password"] not in repr(config) + str(config)
    again = psycopg.conninfo.conninfo_to_dict(
        connector.postgres_connection().dsn.get_secret_value()
    )
    assert again["password"] != params["password"]  # fresh credentials for every connection

    with pytest.raises(ConnectionFailed, match="cluster 'hw-missing'"):
        cluster_credentials(
            project({**conn, "cluster_identifier": "hw-missing"}).connections["warehouse"],
            name="warehouse",
        )


def test_password_connections_pass_the_password(aws: str) -> None:
    conn = {"type": "redshift", "host": "h", "database": "dev", "user": "bob", "password": "p w'd"}
    config = RedshiftConnector(source(table="t"), project(conn)).postgres_connection()
    params = psycopg.conninfo.conninfo_to_dict(config.dsn.get_secret_value())
    assert (params["user"], params["password"], params["port"]) == ("bob", "p w'd", "5439")
    assert "p w'd" not in str(config)
    with pytest.raises(ConfigError, match="iam: true needs cluster_identifier"):
        RedshiftConnector(
            source(table="t"), project({**conn, "password": None, "iam": True})
        ).postgres_connection()
