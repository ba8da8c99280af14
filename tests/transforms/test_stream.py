"""Transforms in streaming: the same rows as batch for the same events (over a real Kafka
topic and the same Parquet data), and steps without a per-micro-batch meaning refused."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from headwater import Entity, FeatureStore, FeatureView, KafkaSource, transforms
from headwater.errors import DefinitionError
from headwater.transforms.runtime import StreamTransforms, apply_transforms
from tests.engines.streaming.support import FLUSH_USER, PARTITIONS, produce, real_rows
from tests.helpers import write_parquet

BASE_MS = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
FIT = (BASE_MS, BASE_MS + 20 * 60_000)  # the first twenty minutes of events
SALT_ENV = "HW_TEST_STREAM_SALT"

VIEWS = """
import pyarrow.compute as pc
from headwater import (
    Count, CountDistinct, Entity, FeatureView, FileSource, KafkaSource, Max, Sum, Tumbling,
    transforms,
)

user = Entity("user", join_keys=["user_id"])
SCHEMA = {{
    "user_id": "int64", "page": "string", "amount": "double", "qty": "int64",
    "card": "string", "email": "string", "ts": "timestamp[ms, UTC]",
}}
clicks = KafkaSource(
    "clicks", connection="events", topic="{topic}", timestamp_field="ts",
    allowed_lateness="5s", schema=SCHEMA, consumer_group="{group}",
)
files = FileSource("click_files", path="data/clicks.parquet", timestamp_field="ts")


@transforms.python
def flag_big(table):
    return table.append_column("big", pc.greater(table["amount"], 50))


def steps():
    return [
        transforms.fill_null("amount", 0),
        transforms.clip("amount", -5, 80),
        transforms.rename({{"qty": "quantity"}}),
        transforms.cast("quantity", "DOUBLE"),
        transforms.hash("page", salt_env="{salt_env}"),
        transforms.fill_null("page", "none"),
        transforms.mask("card", keep_last=4),
        transforms.drop("email"),
        flag_big,
        transforms.standardize("amount", fit={fit!r}, output="amount_z"),
        transforms.normalize("quantity", fit={fit!r}),
    ]


for kind, source in (("stream", clicks), ("batch", files)):
    globals()[f"{{kind}}_rows"] = FeatureView(
        f"{{kind}}_rows", entity=user, source=source, transforms=steps(),
        features={{"amount": "amount", "z": "amount_z", "quantity": "quantity", "page": "page",
                   "card": "card", "big": "big"}},
    )
    globals()[f"{{kind}}_minutes"] = FeatureView(
        f"{{kind}}_minutes", entity=user, source=source, transforms=steps(),
        window=Tumbling("1m"),
        features=[Count(), Sum("amount"), Sum("amount_z"), Max("quantity"), CountDistinct("page"),
                  Max("card"), Count("big")],
    )
"""


def events(seed: int, per_partition: int) -> list[dict[str, Any]]:
    """Events in event-time order per partition, one per (user, time), with nulls, values
    beyond the clip bounds and cards of every length; the last of each partition is far in
    the future and closes every window."""
    rng = random.Random(seed)
    found: list[dict[str, Any]] = []
    for partition in range(PARTITIONS):
        clock = BASE_MS
        for _ in range(per_partition):
            clock += rng.choice([1, 250, 1_000, 20_000, 60_000])
            found.append(
                {
                    "user_id": rng.randrange(10) * PARTITIONS + partition,
                    "page": rng.choice(["home", "cart", "pay", None]),
                    "amount": None if rng.random() < 0.1 else rng.randrange(-80, 500) / 4,
                    "qty": rng.randrange(0, 9),
                    "card": rng.choice([None, "12", "4111 1111 1111 " + str(rng.randrange(10**4))]),
                    "email": f"u{rng.randrange(99)}@example.com",
                    "ts": clock,
                    "_partition": partition,
                }
            )
        found.append({**found[-1], "user_id": FLUSH_USER, "ts": clock + 10 * 86_400_000})
    return found


def write_files(root: Path, found: list[dict[str, Any]]) -> None:
    rows = [{k: v for k, v in e.items() if not k.startswith("_")} for e in found]
    schema = pa.schema(
        [
            ("user_id", pa.int64()),
            ("page", pa.string()),
            ("amount", pa.float64()),
            ("qty", pa.int64()),
            ("card", pa.string()),
            ("email", pa.string()),
            ("ts", pa.timestamp("ms", tz="UTC")),
        ]
    )
    write_parquet(root, "data/clicks.parquet", pa.Table.from_pylist(rows, schema=schema))


@pytest.mark.kafka
def test_streaming_gives_the_batch_rows_after_the_transforms(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SALT_ENV, "stream-and-batch-share-this")
    topic = kafka_topic(partitions=PARTITIONS)
    root = tmp_path / "p"
    root.mkdir()
    config = {
        "project": "s",
        "connections": {"events": {"type": "kafka", "bootstrap_servers": kafka_bootstrap}},
    }
    (root / "headwater.yaml").write_text(yaml.safe_dump(config))
    group = f"hw-{tmp_path.name}"
    (root / "defs.py").write_text(
        VIEWS.format(topic=topic, group=group, salt_env=SALT_ENV, fit=FIT)
    )
    found = events(seed=7, per_partition=120)
    produce(kafka_bootstrap, topic, found)
    write_files(root, found)
    with FeatureStore(root) as store:
        store.run(["batch_rows", "batch_minutes"])
        store.stream(["stream_rows", "stream_minutes"], until_caught_up=True)
        for shape in ("rows", "minutes"):
            batch = real_rows(store, f"batch_{shape}")
            assert batch, shape
            assert real_rows(store, f"stream_{shape}") == batch, shape
        rows = real_rows(store, "batch_rows")
        assert {r["page"] for r in rows} >= {"none"} and all(
            len(r["page"]) in (4, 64) for r in rows
        )
        assert all(r["card"] in (None, "**") or set(r["card"][:-4]) == {"*"} for r in rows)
        assert max(r["amount"] for r in rows) == 80.0
        # Each view fitted its statistics once, from its own source: the same numbers.
        fitted = {(f.view, f.step): f.stats for f in store.registry.fitted_statistics()}
        for step in ("standardize(amount)", "normalize(quantity)"):
            assert fitted[("stream_rows", step)] == fitted[("batch_rows", step)]
        # A second streaming run reuses them.
        before = store.registry.fitted_statistics("stream_rows")
        store.stream(["stream_rows"], until_caught_up=True)
        assert store.registry.fitted_statistics("stream_rows") == before


@pytest.mark.kafka
def test_a_streaming_view_refuses_a_batch_only_step(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic(partitions=1)
    root = tmp_path / "p"
    root.mkdir()
    config = {
        "project": "s",
        "connections": {"events": {"type": "kafka", "bootstrap_servers": kafka_bootstrap}},
    }
    (root / "headwater.yaml").write_text(yaml.safe_dump(config))
    (root / "defs.py").write_text(
        textwrap.dedent(
            f"""
            from headwater import Entity, FeatureView, KafkaSource, transforms
            user = Entity("user", join_keys=["user_id"])
            clicks = KafkaSource("clicks", connection="events", topic="{topic}",
                                 timestamp_field="ts", schema={{"user_id": "int64", "id": "int64",
                                 "ts": "timestamp[ms, UTC]"}})
            latest = FeatureView("latest", entity=user, source=clicks, features={{"id": "id"}},
                                 transforms=[transforms.dedupe("id")])
            """
        )
    )
    with (
        FeatureStore(root) as store,
        pytest.raises(DefinitionError, match=r"transform 1 \(dedupe\(id\)\) has no meaning per"),
    ):
        store.stream(["latest"], until_caught_up=True)


# ---------------------------------------------------------------------- without a broker
user = Entity("user", join_keys=["user_id"])
clicks = KafkaSource("clicks", connection="events", topic="t", timestamp_field="ts")


def _stream_view(*steps: Any, features: Any = None) -> FeatureView:
    return FeatureView(
        "v", entity=user, source=clicks, features=features or {"a": "amount"}, transforms=steps
    )


@pytest.mark.parametrize(
    ("step", "why"),
    [
        (transforms.dedupe("user_id"), "keeps one row per key over all rows"),
        (transforms.pivot("page", "amount", ["home"]), "it groups rows"),
        (transforms.fill_null("amount", "previous"), "'previous' needs the rows before"),
        (transforms.fill_null("amount", "mean"), "statistics of one micro-batch"),
        (transforms.outliers("amount"), "its bounds would come from each micro-batch"),
    ],
)
def test_steps_without_a_micro_batch_meaning_are_refused(step: Any, why: str) -> None:
    with pytest.raises(DefinitionError, match=why) as err:
        StreamTransforms(_stream_view(step), con=duckdb.connect())
    assert "streaming view cannot run it" in err.value.message
    assert err.value.fix


def test_a_micro_batch_gets_the_batch_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same table through the batch path and the streaming path (no fitted steps)."""
    monkeypatch.setenv(SALT_ENV, "s")
    steps = [
        transforms.unpivot(["amount", "fee"], name="what", value="value"),
        transforms.fill_null("value", 1.5),
        transforms.hash("what", salt_env=SALT_ENV),
        transforms.python(lambda t: t.filter(pc.greater(t["value"], 1))),
        transforms.mask("page", keep_last=2),
    ]
    view = _stream_view(*steps, features={"v": "value"})
    table = pa.table(
        {
            "user_id": [1, 2, 3],
            "amount": [0.5, None, 7.0],
            "fee": [2.0, 3.0, None],
            "page": ["home", None, "x"],
            "ts": pa.array([1, 2, 3], pa.timestamp("ms", tz="UTC")),
            "kafka_partition": [0, 0, 1],
            "kafka_offset": [10, 11, 12],
        }
    )
    streamed = StreamTransforms(view, con=duckdb.connect())
    con = duckdb.connect()
    con.register("batch", table)
    batch = apply_transforms(con, view, "batch")
    expected = con.sql(f"SELECT * FROM {batch.relation}").to_arrow_table()
    got = streamed.apply(table)
    assert streamed.schema(table.schema) == got.schema == expected.schema
    key = [("kafka_offset", "ascending"), ("what", "ascending")]
    assert got.sort_by(key).to_pylist() == expected.sort_by(key).to_pylist()
    assert (batch.rows_in, batch.rows_out) == (3, 5)
