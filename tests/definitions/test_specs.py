"""Pinned specs: the registry stores every declaration's ``to_spec()``, and ``apply`` compares
them, so the spec of an unchanged declaration must never change (every project would report a
change and bump its versions). The expected specs are in ``tests/resources/pinned_specs.json``;
never regenerate that file to make this test pass — a difference is a change users would see."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from headwater import (
    Avg,
    Count,
    CountDistinct,
    Entity,
    FeatureView,
    FileSource,
    Hopping,
    KafkaSource,
    Last,
    Max,
    Min,
    PostgresSink,
    PostgresSource,
    RedshiftSink,
    RedshiftSource,
    SqliteSource,
    Sum,
    Tumbling,
    checks,
    transforms,
)
from headwater.definitions.steps import step_key
from headwater.stores.registry._records import canonical

PINNED = Path(__file__).resolve().parents[1] / "resources" / "pinned_specs.json"


def positive(batch: Any) -> Any:
    return True


def shout(table: Any) -> Any:
    return table


user = Entity("user", join_keys="user_id", description="a customer")  # type: ignore[arg-type]
pair = Entity("pair", join_keys=["a_id", "b_id"])
clicks = FileSource(
    "clicks",
    path="data/clicks/",
    format="parquet",
    timestamp_field="ts",
    created_timestamp_field="written_at",
    hive_partitioning=True,
    options={"union_by_name": True},
    primary_key="click_id",
    description="raw clicks",
    checks=[
        checks.not_null("user_id", severity="quarantine"),
        checks.unique("click_id", stored=False),
        checks.between("amount", 0, Decimal("100.5"), mostly=0.99),
        checks.in_set("status", ["new", "paid"], severity="warn"),
        checks.matches("email", r"^\S+@\S+$"),
        checks.max_length("country", 2),
        checks.type("amount", "float64"),
        checks.schema({"user_id": "int64", "ts": "TIMESTAMPTZ"}, exact=True),
        checks.row_count(min=1, max=10),
        checks.freshness("2h", column="ts", severity="warn"),
        checks.expression("amount >= 0"),
        checks.sql("SELECT * FROM {rows} WHERE amount > 5", name="big"),
        checks.python(positive, columns=["amount"], name="pos"),
        checks.between("day", date(2024, 1, 1), date(2024, 2, 1), name="days"),
        checks.between("at", max_value=datetime(2024, 2, 1, 12, tzinfo=UTC), name="until"),
    ],
    schema_mode="discard_row",
)
csv = FileSource("orders_csv", path="data/orders.csv", timestamp_field="ts")
orders = PostgresSource(
    "orders",
    connection="app_db",
    query="SELECT * FROM orders WHERE shop = %(shop)s",
    params={"shop": "fr"},
    timestamp_field="created_at",
    cursor_field="updated_at",
    lag=timedelta(minutes=10),
    end_value=datetime(2024, 6, 1, tzinfo=UTC),
    primary_key=["id"],
    batch_size=5000,
    partition_column="id",
    num_partitions=4,
    partition_bounds=[1, 1000],  # type: ignore[arg-type]  # a list is accepted
    description="orders",
)
orders_num = PostgresSource(
    "orders_num",
    connection="app_db",
    table="public.orders",
    timestamp_field="created_at",
    cursor_field="seq",
    lag=Decimal("2.5"),
    end_value=Decimal("10"),
    primary_key="id",  # type: ignore[arg-type]  # a lone key is accepted
    schema_mode="freeze",
)
local = SqliteSource(
    "local",
    path="app.db",
    table="events",
    timestamp_field="t",
    cursor_field="u",
    primary_key="id",  # type: ignore[arg-type]
    lag="10m",
    end_value="2024-06-01",
    checks=[checks.not_null("id")],
)
stream = KafkaSource(
    "stream",
    connection="events",
    topic="clicks.v1",
    schema='{"user_id": "int64", "amount": "double", "ts": "timestamp[ms, UTC]"}',  # type: ignore[arg-type]
    timestamp_field="ts",
    allowed_lateness=timedelta(seconds=30),
    idle_timeout=60_000,
    key_field="key",
    dead_letter_topic="clicks.dead",
    max_message_bytes=2048,
    consumer_group="g",
    primary_key="user_id",  # type: ignore[arg-type]
)
raw = KafkaSource("raw", connection="events", topic="raw", format="raw")
warehouse = RedshiftSource(
    "wh",
    connection="warehouse",
    table="public.sales",
    timestamp_field="ts",
    cursor_field="updated_at",
    primary_key=["id"],
    batch_size=1000,
    unload={
        "s3_path": "s3://bucket/prefix",
        "iam_role": "arn:aws:iam::123456789012:role/unload",
        "region": "eu-west-1",
    },
)
fit = ("2024-01-01", date(2024, 7, 1))
steps = [
    transforms.dedupe(["order_id"], order_by="updated_at"),
    transforms.dedupe("order_id"),
    transforms.fill_null("amount", 0),
    transforms.fill_null("label", "none"),
    transforms.fill_null("when", datetime(2024, 1, 1, 12, 30)),
    transforms.fill_null("amount", "mean", fit=fit),
    transforms.fill_null("amount", "median"),
    transforms.fill_null("amount", "previous", by="user_id", order_by=["updated_at"]),
    transforms.clip("amount", 0, 10_000),
    transforms.clip("day", lower=date(2024, 1, 1)),
    transforms.outliers("amount"),
    transforms.outliers(
        "amount", "zscore", action="null", fit=("2024-01-01T00:00:00+02:00", 1_720_000_000_000)
    ),
    transforms.outliers("amount", factor=2),
    transforms.cast({"amount": "float64", "qty": "int"}, on_error="null"),
    transforms.cast("ref", "decimal(12, 2)"),
    transforms.rename({"amt": "amount2"}),
    transforms.rename("x", "y"),
    transforms.normalize("amount", fit=fit),
    transforms.standardize("amount", fit=(datetime(2024, 1, 1), "2024-03-01"), output="amount_z"),
    transforms.pivot("kind", "n", ["click", "view"]),
    transforms.pivot("kind", "n", {"a": "col_a"}, agg="sum"),
    transforms.unpivot(["p", "q"], name="field", value="text"),
    transforms.hash("email", salt_env="PII_SALT"),
    transforms.mask("card"),
    transforms.mask("phone", keep_last=2, char="#"),
    transforms.drop("ssn", ["tmp1", "tmp2"]),
    transforms.python(shout, frame="pandas"),
    transforms.python(shout, name="named"),
]
profile = FeatureView(
    "profile",
    entity=user,
    source=clicks,
    features={"amount": "amount", "big": "amount > 100"},
    ttl="2d",
    online=False,
    description="profile",
    tags={"team": "growth"},
    sinks=[
        PostgresSink(connection="warehouse", table="analytics.profile"),
        RedshiftSink(
            connection="rs",
            table="profile",
            mode="append",
            s3_staging="s3://bucket/stage",
            iam_role="arn:aws:iam::123456789012:role/copy",
            create=False,
        ),
    ],
    checks=[checks.row_count(min=1), checks.not_null("amount", mostly=0.5)],
)
cleaned = FeatureView(
    "cleaned", entity=user, source=csv, features={"amount": "amount"}, transforms=steps
)
hourly = FeatureView(
    "hourly",
    entity=user,
    source=stream,
    features=[
        Sum("amount"),
        Count(),
        Count("amount", name="n"),
        Avg("amount"),
        Min("amount"),
        Max("amount"),
        CountDistinct("page"),
        Last("status", name="last_status"),
    ],
    window=Hopping(size="1h", every="5m"),
    ttl=timedelta(hours=2),
    emit="update",
)
daily = FeatureView(
    "daily",
    entity=pair,
    source=orders,
    features=[Sum("amount")],
    window=Tumbling("1d"),
    ttl=86_400_000,
)
lifetime = FeatureView("lifetime", entity=user, source=local, features=[Count()])

DECLARATIONS: list[Any] = [
    user,
    pair,
    clicks,
    csv,
    orders,
    orders_num,
    local,
    stream,
    raw,
    warehouse,
    profile,
    cleaned,
    hourly,
    daily,
    lifetime,
]


def pinned() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(PINNED.read_text())
    return found


@pytest.mark.parametrize(
    "declaration", DECLARATIONS, ids=lambda d: f"{d.to_spec()['kind']}:{d.name}"
)
def test_the_spec_of_a_declaration_does_not_change(declaration: Any) -> None:
    spec = declaration.to_spec()
    expected = pinned()[f"{spec['kind']}:{declaration.name}"]
    assert spec == expected
    assert canonical(spec) == canonical(expected)  # what the registry stores and compares


def test_the_keys_of_fitted_statistics_do_not_change() -> None:
    # Stored statistics are looked up by these digests of the step specs.
    assert [step_key(steps, i) for i in range(len(steps))] == pinned()["step_keys"]


def test_every_declaration_is_pinned() -> None:
    assert sorted(pinned()) == sorted(
        [f"{d.to_spec()['kind']}:{d.name}" for d in DECLARATIONS] + ["step_keys"]
    )
