"""RedshiftSink: the exact SQL it sends, S3 staging and cleanup against an S3-compatible server
(moto, started here), and the IAM credential request.

No Redshift runs here. The generated MERGE / INSERT / DDL is also run on PostgreSQL 15, whose
MERGE grammar Redshift's follows, as a check of syntax and semantics (not of Redshift itself).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater import Count, Entity, FeatureView, FileSource, RedshiftSink
from headwater.config.models import ProjectConfig
from headwater.connectors.redshift import statements as rs
from headwater.connectors.redshift.auth import cluster_credentials, credentials_request
from headwater.connectors.redshift.config import RedshiftConnection
from headwater.connectors.redshift.sink import RedshiftSinkWriter
from headwater.connectors.s3 import delete_staged, split_s3_url, stage_parquet
from headwater.connectors.sinks.base import SinkError
from headwater.connectors.sinks.typemap import redshift_type
from headwater.errors import ConfigError, ConnectionFailed
from tests.helpers import TS
from tests.helpers import aws_client as client

TARGET = '"analytics"."user_daily"'
STATE = '"analytics"."headwater_sink_state"'
LOG = '"analytics"."user_daily_log"'
ROLE = "arn:aws:iam::123456789012:role/redshift-copy"
PREFIX = "s3://hw-staging/load/user_daily/run1/"
COLUMNS = [
    ("user_id", "BIGINT"),
    ("event_timestamp", "TIMESTAMPTZ"),
    ("amount_sum", "DOUBLE PRECISION"),
    ("events", "BIGINT"),
]
KEYS = ["user_id", "event_timestamp"]
STAGE_SQL = (
    'CREATE TEMP TABLE "headwater_stage" ("user_id" BIGINT, "event_timestamp" TIMESTAMPTZ, '
    '"amount_sum" DOUBLE PRECISION, "events" BIGINT)'
)
COPY_SQL = (
    "COPY \"headwater_stage\" FROM 's3://hw-staging/load/user_daily/run1/' "
    "IAM_ROLE 'arn:aws:iam::123456789012:role/redshift-copy' FORMAT AS PARQUET"
)
MERGE_SQL = (
    'MERGE INTO "analytics"."user_daily" USING "headwater_stage" '
    'ON "analytics"."user_daily"."user_id" = "headwater_stage"."user_id" '
    'AND "analytics"."user_daily"."event_timestamp" = "headwater_stage"."event_timestamp" '
    'WHEN MATCHED THEN UPDATE SET "amount_sum" = "headwater_stage"."amount_sum", '
    '"events" = "headwater_stage"."events" '
    'WHEN NOT MATCHED THEN INSERT ("user_id", "event_timestamp", "amount_sum", "events") '
    'VALUES ("headwater_stage"."user_id", "headwater_stage"."event_timestamp", '
    '"headwater_stage"."amount_sum", "headwater_stage"."events")'
)
INSERT_SQL = (
    'INSERT INTO "analytics"."user_daily" ("user_id", "event_timestamp", "amount_sum", "events") '
    'SELECT "user_id", "event_timestamp", "amount_sum", "events" FROM "headwater_stage"'
)
DROP_SQL = 'DROP TABLE "headwater_stage"'


# ---------------------------------------------------------------------- SQL text
def test_copy_sql() -> None:
    assert rs.build_copy_sql(PREFIX, ROLE) == COPY_SQL


def test_merge_sql() -> None:
    assert rs.build_merge_sql(TARGET, [n for n, _ in COLUMNS], KEYS) == MERGE_SQL


def test_merge_sql_of_keys_only_updates_a_key_to_itself() -> None:
    assert rs.build_merge_sql('"t"', ["k"], ["k"]) == (
        'MERGE INTO "t" USING "headwater_stage" ON "t"."k" = "headwater_stage"."k" '
        'WHEN MATCHED THEN UPDATE SET "k" = "headwater_stage"."k" '
        'WHEN NOT MATCHED THEN INSERT ("k") VALUES ("headwater_stage"."k")'
    )


def test_insert_stage_create_and_alter_sql() -> None:
    assert rs.build_insert_sql(TARGET, [n for n, _ in COLUMNS]) == INSERT_SQL
    assert rs.build_stage_sql(COLUMNS) == STAGE_SQL
    assert rs.build_create_table_sql(TARGET, COLUMNS, KEYS) == (
        'CREATE TABLE "analytics"."user_daily" ("user_id" BIGINT, "event_timestamp" TIMESTAMPTZ, '
        '"amount_sum" DOUBLE PRECISION, "events" BIGINT, '
        'PRIMARY KEY ("user_id", "event_timestamp"))'
    )
    assert rs.build_create_table_sql('"t"', [("a", "BIGINT")], None) == (
        'CREATE TABLE "t" ("a" BIGINT)'
    )
    assert rs.build_add_column_sql(TARGET, "label", "VARCHAR(65535)") == (
        'ALTER TABLE "analytics"."user_daily" ADD COLUMN "label" VARCHAR(65535)'
    )


def test_state_sql_binds_its_values() -> None:
    assert rs.build_state_table_sql(STATE) == (
        'CREATE TABLE IF NOT EXISTS "analytics"."headwater_sink_state" '
        "(target_table VARCHAR(256) NOT NULL, view_name VARCHAR(256) NOT NULL, "
        "last_seq BIGINT NOT NULL, run_id VARCHAR(64), updated_at TIMESTAMP NOT NULL, "
        "PRIMARY KEY (target_table, view_name))"
    )
    assert rs.build_state_sql(
        STATE, table="analytics.user_daily", view="user_daily", seq=42, run_id="r1"
    ) == [
        (
            'DELETE FROM "analytics"."headwater_sink_state" '
            "WHERE target_table = %s AND view_name = %s",
            ("analytics.user_daily", "user_daily"),
        ),
        (
            'INSERT INTO "analytics"."headwater_sink_state" '
            "(target_table, view_name, last_seq, run_id, updated_at) "
            "VALUES (%s, %s, %s, %s, GETDATE())",
            ("analytics.user_daily", "user_daily", 42, "r1"),
        ),
    ]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("upsert", [STAGE_SQL, COPY_SQL, MERGE_SQL, DROP_SQL]),
        ("append", [STAGE_SQL, COPY_SQL, INSERT_SQL, DROP_SQL]),
        (
            "replace",
            [STAGE_SQL, COPY_SQL, 'DELETE FROM "analytics"."user_daily"', INSERT_SQL, DROP_SQL],
        ),
    ],
)
def test_load_transactions(mode: str, expected: list[str]) -> None:
    load = rs.build_load_sql(
        mode, target=TARGET, columns=COLUMNS, keys=KEYS, s3_prefix=PREFIX, iam_role=ROLE
    )
    assert load == expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("upsert", []), ("append", []), ("replace", ['DELETE FROM "analytics"."user_daily"'])],
)
def test_load_transactions_without_rows(mode: str, expected: list[str]) -> None:
    load = rs.build_load_sql(
        mode, target=TARGET, columns=COLUMNS, keys=KEYS, s3_prefix=None, iam_role=ROLE
    )
    assert load == expected


def test_identifiers_are_quoted_and_literals_refuse_quotes() -> None:
    assert rs.table_ref(None, 'we"ird') == '"we""ird"'
    assert rs.table_ref("s", "t") == '"s"."t"'
    for bad in ("s3://b/x'; DROP TABLE t; --", "s3://b/x\\y"):
        with pytest.raises(SinkError, match="cannot be written into a Redshift COPY"):
            rs.build_copy_sql(bad, ROLE)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (pa.bool_(), "BOOLEAN"),
        (pa.int8(), "SMALLINT"),
        (pa.int16(), "SMALLINT"),
        (pa.uint8(), "SMALLINT"),
        (pa.int32(), "INTEGER"),
        (pa.uint16(), "INTEGER"),
        (pa.int64(), "BIGINT"),
        (pa.uint32(), "BIGINT"),
        (pa.uint64(), "DECIMAL(20,0)"),
        (pa.float32(), "REAL"),
        (pa.float64(), "DOUBLE PRECISION"),
        (pa.decimal128(12, 3), "DECIMAL(12,3)"),
        (pa.string(), "VARCHAR(65535)"),
        (pa.large_string(), "VARCHAR(65535)"),
        (pa.binary(), "VARBYTE(1024000)"),
        (pa.date32(), "DATE"),
        (pa.time64("us"), "TIME"),
        (pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ"),
        (pa.timestamp("ms"), "TIMESTAMP"),
        (pa.dictionary(pa.int32(), pa.string()), "VARCHAR(65535)"),
    ],
)
def test_redshift_types(dtype: pa.DataType, expected: str) -> None:
    assert redshift_type(dtype) == expected


@pytest.mark.parametrize(
    "dtype",
    [pa.list_(pa.int64()), pa.struct([("a", pa.int64())]), pa.duration("s"), pa.decimal256(40, 2)],
)
def test_types_redshift_cannot_load_say_so(dtype: pa.DataType) -> None:
    with pytest.raises(SinkError, match="cannot be loaded into Redshift"):
        redshift_type(dtype)


# ---------------------------------------------------------------------- S3 staging (moto)


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    s3 = client(s3_endpoint, "s3")
    s3.create_bucket(Bucket="hw-staging")
    yield s3
    listing = s3.list_objects_v2(Bucket="hw-staging").get("Contents", [])
    for item in listing:
        s3.delete_object(Bucket="hw-staging", Key=item["Key"])
    s3.delete_bucket(Bucket="hw-staging")


def keys(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket="hw-staging").get("Contents", [])]


def read_part(s3: Any, key: str) -> pa.Table:
    body = s3.get_object(Bucket="hw-staging", Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def sample(n: int) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(range(n), pa.int64()),
            "event_timestamp": pa.array([datetime(2024, 3, 1, tzinfo=UTC)] * n, TS),
            "amount_sum": pa.array([i / 2 for i in range(n)], pa.float64()),
        }
    )


def test_staged_parts_hold_the_rows_and_are_deleted(s3: Any) -> None:
    table = sample(10)
    staged = stage_parquet(
        s3, PREFIX, table.schema, table.to_batches(max_chunksize=3), rows_per_file=5
    )
    assert staged.url == PREFIX
    assert staged.rows == 10
    assert staged.keys == [
        "load/user_daily/run1/part-00000.parquet",
        "load/user_daily/run1/part-00001.parquet",
    ]
    assert keys(s3) == staged.keys
    back = pa.concat_tables([read_part(s3, k) for k in staged.keys])
    assert back.equals(table)
    assert back.schema.field("event_timestamp").type == TS
    delete_staged(s3, staged)
    assert keys(s3) == []


def test_nothing_to_stage_writes_nothing(s3: Any) -> None:
    staged = stage_parquet(s3, PREFIX, sample(0).schema, [])
    assert (staged.keys, staged.rows) == ([], 0)
    delete_staged(s3, staged)
    assert keys(s3) == []


def test_a_failed_staging_removes_the_parts_already_written(s3: Any) -> None:
    table = sample(6)

    def batches() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=3)
        raise OSError("offline store went away")

    with pytest.raises(OSError, match="went away"):
        stage_parquet(s3, PREFIX, table.schema, batches(), rows_per_file=3)
    assert keys(s3) == []


def test_an_unwritable_bucket_is_a_clear_error(s3_endpoint: str) -> None:
    s3 = client(s3_endpoint, "s3")
    table = sample(1)
    with pytest.raises(SinkError, match=r"cannot write s3://no-such-bucket/x/part-00000.parquet"):
        stage_parquet(s3, "s3://no-such-bucket/x/", table.schema, table.to_batches())
    assert split_s3_url("s3://b/a/b/") == ("b", "a/b/")


# ---------------------------------------------------------------------- IAM credentials (moto)
def connection(**overrides: Any) -> RedshiftConnection:
    values: dict[str, Any] = {
        "host": "analytics.example.eu-west-1.redshift.amazonaws.com",
        "database": "dev",
        "user": "analyst",
        "iam": True,
        "cluster_identifier": "analytics",
        "region": "us-east-1",
    }
    values.update(overrides)
    return RedshiftConnection.model_validate(values)


def test_the_credentials_request() -> None:
    assert credentials_request(connection()) == {
        "DbUser": "analyst",
        "DbName": "dev",
        "ClusterIdentifier": "analytics",
        "DurationSeconds": 900,
        "AutoCreate": False,
    }
    with pytest.raises(ConfigError, match="iam: true needs cluster_identifier and user"):
        credentials_request(connection(cluster_identifier=None))


def test_temporary_credentials_come_from_get_cluster_credentials(s3_endpoint: str) -> None:
    redshift = client(s3_endpoint, "redshift")
    redshift.create_cluster(
        ClusterIdentifier="analytics",
        NodeType="ra3.xlplus",
        MasterUsername="admin",
        MasterUserPassword="Password1",
    )
    user, password = cluster_credentials(connection(), client=redshift)
    assert user == "IAM:analyst"
    assert len(password) == 32
    with pytest.raises(ConnectionFailed, match=r"cluster 'gone'") as info:
        cluster_credentials(connection(cluster_identifier="gone"), client=redshift)
    assert "redshift:GetClusterCredentials" in str(info.value)


# ---------------------------------------------------------------------- the writer's sequence
class RecordingWriter(RedshiftSinkWriter):
    """Sends nothing to a cluster: answers the catalog with ``tables`` and records statements
    (with the S3 keys present at that moment), so the writer's sequence can be asserted."""

    tables: dict[str, list[str]]
    sent: list[tuple[list[Any], list[str]]]

    def _columns(self, table: str) -> list[str]:
        return self.tables.get(table, [])

    def execute_transaction(self, statements: list[Any], *, atomic: bool = True) -> None:
        self.sent.append((statements, keys(self._s3)))
        if any("MERGE" in text for text, _ in statements) and getattr(self, "fail", False):
            raise SinkError("Redshift rejected the load")


def recording_writer(s3: Any, tables: dict[str, list[str]]) -> RecordingWriter:
    view = FeatureView(
        "user_daily",
        entity=Entity("user", join_keys=["user_id"]),
        source=FileSource("events", path="e.parquet", timestamp_field="ts"),
        features=[Count(name="events")],
        sinks=[
            RedshiftSink(
                connection="dw",
                table="analytics.user_daily",
                s3_staging="s3://hw-staging/load",
                iam_role=ROLE,
            )
        ],
    )
    project = ProjectConfig.model_validate(
        {"project": "t", "connections": {"dw": connection(iam=False).model_dump()}}
    )
    writer = RecordingWriter(view.sinks[0], view, project, s3_client=s3)
    writer.tables, writer.sent = tables, []
    return writer


def test_the_writer_creates_stages_loads_and_cleans_up(s3: Any) -> None:
    writer = recording_writer(s3, {})
    table = sample(4).append_column("label", pa.array(["a", "b", None, "d"]).dictionary_encode())
    stats = writer.write(table.schema, table.to_batches(), seq=5, run_id="run1")
    assert stats.rows == 4
    (ddl, _), (load, present) = writer.sent
    assert [text for text, _ in ddl] == [
        'CREATE SCHEMA IF NOT EXISTS "analytics"',
        'CREATE TABLE "analytics"."user_daily" ("user_id" BIGINT, "event_timestamp" TIMESTAMPTZ, '
        '"amount_sum" DOUBLE PRECISION, "label" VARCHAR(65535), '
        'PRIMARY KEY ("user_id", "event_timestamp"))',
        rs.build_state_table_sql(STATE),
    ]
    texts = [text for text, _ in load]
    assert texts[1] == COPY_SQL
    assert texts[2].startswith('MERGE INTO "analytics"."user_daily" USING "headwater_stage"')
    assert load[-1][1] == ("analytics.user_daily", "user_daily", 5, "run1")
    assert present == ["load/user_daily/run1/part-00000.parquet"]  # staged during the load
    assert keys(s3) == []  # and deleted after it


def test_the_writer_adds_missing_columns_and_cleans_up_after_a_failed_load(s3: Any) -> None:
    writer = recording_writer(
        s3, {"user_daily": ["USER_ID", "event_timestamp"], "headwater_sink_state": ["x"]}
    )
    writer.fail = True  # type: ignore[attr-defined]  # read by RecordingWriter
    table = sample(2)
    with pytest.raises(SinkError, match="Redshift rejected the load"):
        writer.write(table.schema, table.to_batches(), seq=6, run_id="run1")
    (ddl, _), _ = writer.sent
    assert [text for text, _ in ddl] == [
        'ALTER TABLE "analytics"."user_daily" ADD COLUMN "amount_sum" DOUBLE PRECISION',
        rs.build_state_table_sql(STATE),
    ]
    assert keys(s3) == []


# ---------------------------------------------------------------------- PostgreSQL 15 as a check
@pytest.mark.postgres
def test_the_generated_statements_run_on_postgresql(pg_dsn: str) -> None:
    import psycopg

    columns = [*COLUMNS, ("label", "VARCHAR(65535)"), ("price", "DECIMAL(12,3)"), ("day", "DATE")]
    names = [n for n, _ in columns]
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    with psycopg.connect(pg_dsn, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute("CREATE FUNCTION getdate() RETURNS timestamp LANGUAGE sql AS 'SELECT now()'")
        conn.execute('CREATE SCHEMA "analytics"')
        conn.execute(rs.build_create_table_sql(TARGET, columns[:4], KEYS))
        for name, kind in columns[4:]:
            conn.execute(rs.build_add_column_sql(TARGET, name, kind))
        conn.execute(rs.build_create_table_sql(LOG, columns, None))
        conn.execute(rs.build_state_table_sql(STATE))
        conn.execute(
            f"INSERT INTO {TARGET} VALUES (1, %s, 1.0, 1, 'old', 1.5, '2024-01-01')", (t0,)
        )
        with conn.transaction():
            conn.execute(rs.build_stage_sql(columns))
            conn.execute(
                'INSERT INTO "headwater_stage" VALUES (1, %s, 2.0, 2, %s, 2.5, %s), '
                "(2, %s, 3.0, 3, NULL, NULL, NULL)",
                (t0, "it's", date(2024, 3, 1), t0),
            )
            conn.execute(rs.build_merge_sql(TARGET, names, KEYS))
            conn.execute(rs.build_insert_sql(LOG, names))
            conn.execute(f"DROP TABLE {rs.STAGE}")
            for text, values in rs.build_state_sql(
                STATE, table="analytics.user_daily", view="user_daily", seq=3, run_id="r"
            ):
                conn.execute(text, values)
        got = conn.execute(f"SELECT * FROM {TARGET} ORDER BY user_id").fetchall()
        assert got == [
            (1, t0, 2.0, 2, "it's", Decimal("2.500"), date(2024, 3, 1)),
            (2, t0, 3.0, 3, None, None, None),
        ]
        assert conn.execute(f"SELECT count(*) FROM {LOG}").fetchall() == [(2,)]
        state = conn.execute(f"SELECT target_table, last_seq, run_id FROM {STATE}").fetchall()
        assert state == [("analytics.user_daily", 3, "r")]
