"""Streaming keeps sub-millisecond event times as batch does: a projection's rows keep the
source's microseconds, a lifetime row stands at the millisecond after its events — the same
rows from a Kafka topic as from a file, and none before the event it holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from headwater import FeatureStore
from tests.engines.streaming.support import FLUSH_USER, produce, real_rows
from tests.helpers import write_parquet

pytestmark = pytest.mark.kafka

VIEWS = """
from headwater import Count, Entity, FeatureView, FileSource, KafkaSource

user = Entity("user", join_keys=["user_id"])
clicks = KafkaSource(
    "clicks", connection="events", topic="{topic}", timestamp_field="ts",
    allowed_lateness="1s", schema={{"user_id": "int64", "v": "int64", "ts": "timestamp[us, UTC]"}},
    consumer_group="{group}",
)
files = FileSource("click_files", path="data/clicks.parquet", timestamp_field="ts")
for kind, source in (("stream", clicks), ("batch", files)):
    globals()[f"{{kind}}_latest"] = FeatureView(
        f"{{kind}}_latest", entity=user, source=source, features={{"v": "v"}}
    )
    globals()[f"{{kind}}_running"] = FeatureView(
        f"{{kind}}_running", entity=user, source=source, features=[Count()]
    )
"""
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
OFFSETS_US = [0, 400, 999, 1_000, 1_400, 2_001, 5_250]


def _events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [
        {"user_id": 1 + i % 2, "v": i, "ts": T0 + timedelta(microseconds=us), "_partition": 0}
        for i, us in enumerate(OFFSETS_US)
    ]
    # Far later: moves the watermark past every real event.
    events.append({"user_id": FLUSH_USER, "v": -1, "ts": T0 + timedelta(days=1), "_partition": 0})
    return events


def test_sub_millisecond_times_stream_as_they_run_in_batch(
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
    (root / "defs.py").write_text(VIEWS.format(topic=topic, group=f"hw-{topic}-precision"))
    events = _events()
    produce(kafka_bootstrap, topic, [e | {"ts": e["ts"].isoformat()} for e in events])
    table = pa.Table.from_pylist(
        [{k: v for k, v in e.items() if not k.startswith("_")} for e in events],
        schema=pa.schema(
            [("user_id", pa.int64()), ("v", pa.int64()), ("ts", pa.timestamp("us", tz="UTC"))]
        ),
    )
    write_parquet(root, "data/clicks.parquet", table)
    with FeatureStore(root) as store:
        store.apply()
        store.run(["batch_latest", "batch_running"])
        store.stream(["stream_latest", "stream_running"], until_caught_up=True)
        for name in ("latest", "running"):
            assert real_rows(store, f"stream_{name}") == real_rows(store, f"batch_{name}"), name
        latest = real_rows(store, "stream_latest")
        running = real_rows(store, "stream_running")
    # The projection keeps every event's own microsecond.
    assert sorted(r["event_timestamp"] for r in latest) == [
        T0 + timedelta(microseconds=us) for us in OFFSETS_US
    ]
    # A lifetime row stands at or after its events: user 1 has events at 0, 999, 1400 and
    # 5250 µs, so rows at 0, 1, 2 and 6 ms counting 1, 2, 3 and 4 events.
    user1 = sorted((r["event_timestamp"], r["count"]) for r in running if r["user_id"] == 1)
    assert user1 == [
        (T0 + timedelta(milliseconds=ms), n) for ms, n in ((0, 1), (1, 2), (2, 3), (6, 4))
    ]
