"""Sink declarations: validation with errors naming the fix, specs, and views carrying sinks."""

from __future__ import annotations

from typing import Any

import pytest

from headwater import Count, Entity, FeatureView, FileSource, PostgresSink, RedshiftSink
from headwater.definitions.sinks import Sink
from headwater.errors import ConfigError, DefinitionError
from headwater.plugins import SINKS, load_plugin

ROLE = "arn:aws:iam::123456789012:role/redshift-copy"


def view(sinks: Any) -> FeatureView:
    return FeatureView(
        "v",
        entity=Entity("user", join_keys=["user_id"]),
        source=FileSource("events", path="e.parquet", timestamp_field="ts"),
        features=[Count()],
        sinks=sinks,
    )


def test_defaults_and_spec() -> None:
    sink = PostgresSink(connection="warehouse", table="analytics.user_orders_daily")
    assert (sink.mode, sink.create, sink.evolve) == ("upsert", True, True)
    assert (sink.schema_name, sink.table_name) == ("analytics", "user_orders_daily")
    assert PostgresSink(connection="w", table="t").schema_name is None
    assert sink.to_spec() == {
        "kind": "postgres",
        "connection": "warehouse",
        "table": "analytics.user_orders_daily",
        "mode": "upsert",
        "create": True,
        "evolve": True,
    }
    redshift = RedshiftSink(
        connection="dw", table="t", mode="append", s3_staging="s3://bucket/p", iam_role=ROLE
    )
    assert redshift.s3_staging == "s3://bucket/p/"
    assert redshift.to_spec()["iam_role"] == ROLE
    assert hash(sink) == hash(PostgresSink(connection="warehouse", table=sink.table))


@pytest.mark.parametrize(
    "table", ["", "a.b.c", "analytics.user orders", "1table", "x;drop", 'a"b', "a" * 64, None]
)
def test_bad_table_names(table: Any) -> None:
    with pytest.raises(DefinitionError, match="is not a valid table name") as info:
        PostgresSink(connection="warehouse", table=table)
    assert "schema.table" in str(info.value)


def test_bad_mode_connection_and_flags() -> None:
    with pytest.raises(DefinitionError, match=r"mode 'merge' is not valid") as info:
        PostgresSink(connection="w", table="t", mode="merge")  # type: ignore[arg-type]  # on purpose
    assert "mode='upsert', 'append' or 'replace'" in str(info.value)
    with pytest.raises(DefinitionError, match=r"connection '' is not a valid name"):
        PostgresSink(connection="", table="t")
    with pytest.raises(DefinitionError, match="create must be True or False"):
        PostgresSink(connection="w", table="t", create="yes")  # type: ignore[arg-type]  # on purpose


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("s3_staging", "bucket/prefix", "is not an S3 prefix"),
        ("s3_staging", "s3://bucket/it's", "is not an S3 prefix"),
        ("s3_staging", "s3://bucket/a b", "is not an S3 prefix"),
        ("s3_staging", "s3://Bucket/x", "is not an S3 prefix"),
        ("iam_role", "role/x", "is not an IAM role ARN"),
        ("iam_role", "arn:aws:iam::123:role/x", "is not an IAM role ARN"),
    ],
)
def test_bad_redshift_staging_and_role(field: str, value: str, message: str) -> None:
    args: dict[str, Any] = {"s3_staging": "s3://bucket/p/", "iam_role": ROLE, field: value}
    with pytest.raises(DefinitionError, match=message):
        RedshiftSink(connection="dw", table="t", **args)


def test_views_carry_sinks_in_their_spec() -> None:
    sink = PostgresSink(connection="w", table="a.t")
    assert view([sink]).sinks == [sink]
    assert view([sink]).to_spec()["sinks"] == [sink.to_spec()]
    assert view(None).sinks == []
    assert view(None).to_spec()["sinks"] == []


def test_views_reject_non_sinks_and_duplicate_tables() -> None:
    with pytest.raises(DefinitionError, match="is not a sink"):
        view(["warehouse"])
    sink = PostgresSink(connection="w", table="a.t")
    with pytest.raises(DefinitionError, match="two sinks load the same table"):
        view([sink, PostgresSink(connection="w", table="a.t", mode="append")])


def test_writers_are_registered_by_kind() -> None:
    assert issubclass(PostgresSink, Sink) and issubclass(RedshiftSink, Sink)
    assert set(SINKS) == {PostgresSink.kind, RedshiftSink.kind}
    for kind in SINKS:
        cls = load_plugin("headwater.sinks", kind)
        assert cls.SUPPORTS_UPSERT is True
    with pytest.raises(ConfigError, match="no implementation named 'snowflake'"):
        load_plugin("headwater.sinks", "snowflake")
