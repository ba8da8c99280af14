"""``headwater stream`` against the real Kafka-protocol broker: the same rows as batch, dead
letters, restarts that continue where they stopped, emit modes, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from headwater import FeatureStore
from headwater.engines.streaming.dead_letters import TableDeadLetters
from headwater.errors import ConfigError, DefinitionError
from headwater.orchestration.workers import StreamOptions
from tests.engines.streaming.support import (
    FLUSH_USER,
    PARTITIONS,
    make_events,
    online_rows,
    produce,
    real_rows,
    write_event_files,
    write_stream_project,
)

pytestmark = pytest.mark.kafka

WINDOWS = ("tumbling", "hopping", "lifetime")


def _stream_and_batch(store: FeatureStore, windows: tuple[str, ...] = WINDOWS) -> None:
    store.apply()
    store.run([f"batch_{w}" for w in windows])
    store.stream([f"stream_{w}" for w in windows], until_caught_up=True)


def _dead_letter_metric(check: str) -> float:
    from headwater.observability.metrics import REGISTRY

    labels = {"view": "stream_tumbling", "check": check}
    return REGISTRY.get_sample_value("headwater_stream_dead_letters_total", labels) or 0.0


@pytest.mark.parametrize(
    "online",
    [None, "redis"],
    ids=["sqlite-online", "redis-online"],
)
def test_streaming_gives_the_batch_rows(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_topic: Any,
    online: str | None,
    redis_url: str,
    redis_prefix: str,
) -> None:
    topic = kafka_topic(partitions=PARTITIONS)
    online_config = (
        {"type": "redis", "url": redis_url, "key_prefix": redis_prefix} if online else None
    )
    root = write_stream_project(tmp_path / "p", kafka_bootstrap, topic, online=online_config)
    events = make_events(seed=11, per_partition=150)
    produce(kafka_bootstrap, topic, events)
    write_event_files(root, events)
    with FeatureStore(root) as store:
        _stream_and_batch(store)
        users = sorted({e["user_id"] for e in events if e["user_id"] != FLUSH_USER})
        for window in WINDOWS:
            batch = real_rows(store, f"batch_{window}")
            streamed = real_rows(store, f"stream_{window}")
            assert batch, window
            assert streamed == batch, window
            store.materialize([f"batch_{window}"])
            served = online_rows(store, f"stream_{window}", users)
            assert served == online_rows(store, f"batch_{window}", users), window
            assert len(served) == len(users)
        (run,) = store.registry.runs(view="stream_tumbling", kind="stream")
        assert run.status == "success"
        assert run.rows_in == len(events)
        assert run.details["late"] == 0
        assert run.details["dead_letters"] == 0


def test_a_second_run_continues_where_the_first_stopped(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic(partitions=PARTITIONS)
    root = write_stream_project(tmp_path / "p", kafka_bootstrap, topic, windows=("tumbling",))
    events = make_events(seed=5, per_partition=120)
    # The first half of every partition, then the rest: open windows are carried over in
    # the saved state, not lost or counted twice.
    first = [e for e in events if e["user_id"] != FLUSH_USER][: len(events) // 2]
    rest = [e for e in events if e not in first]
    produce(kafka_bootstrap, topic, first)
    write_event_files(root, events)
    with FeatureStore(root) as store:
        store.apply()
        (stats,) = store.stream(["stream_tumbling"], until_caught_up=True)
        assert stats.events == len(first)
        assert store.registry.stream_partitions("stream_tumbling", topic, [0, 1, 2, 3])
        produce(kafka_bootstrap, topic, rest)
        (stats,) = store.stream(["stream_tumbling"], until_caught_up=True)
        assert stats.events == len(rest)
        store.run(["batch_tumbling"])
        assert real_rows(store, "stream_tumbling") == real_rows(store, "batch_tumbling")
        # Caught up: a third run reads nothing and changes nothing.
        before = real_rows(store, "stream_tumbling")
        (stats,) = store.stream(["stream_tumbling"], until_caught_up=True)
        assert stats.events == 0
        assert real_rows(store, "stream_tumbling") == before
        # --reset forgets the progress: the topic is read again, with the same result.
        assert store.reset_stream(["stream_tumbling"]) == {"stream_tumbling": PARTITIONS}
        (stats,) = store.stream(["stream_tumbling"], until_caught_up=True)
        assert stats.events == len(events)
        assert real_rows(store, "stream_tumbling") == before


def test_bad_messages_become_dead_letters_and_the_stream_goes_on(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    from confluent_kafka import Producer

    topic = kafka_topic(partitions=1)
    root = write_stream_project(tmp_path / "p", kafka_bootstrap, topic, windows=("tumbling",))
    good = {"user_id": 1, "page": "home", "amount": 2.5, "qty": 1}
    t0 = 1_700_000_040_000
    messages: list[bytes] = [
        json.dumps({**good, "ts": t0}).encode(),
        b'{"user_id": 1, "ts": ',  # invalid JSON
        json.dumps({**good, "amount": "lots", "ts": t0 + 1}).encode(),  # wrong type
        json.dumps({**good, "ts": None}).encode(),  # missing event time
        json.dumps({**good, "page": "x" * 2_000_000, "ts": t0 + 2}).encode(),  # oversized
        json.dumps({**good, "user_id": None, "ts": t0 + 3}).encode(),  # no join key
        json.dumps({**good, "ts": t0 + 120_000}).encode(),  # closes [t0's minute]
        json.dumps({**good, "ts": t0 + 4}).encode(),  # late: its window closed
        json.dumps({**good, "amount": 4.0, "ts": t0 + 120_001}).encode(),
        json.dumps({**good, "user_id": FLUSH_USER, "ts": t0 + 10**9}).encode(),
    ]
    write_event_files(root, [])
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 10_000_000})
    for value in messages:
        producer.produce(topic, value=value, partition=0)
        assert producer.flush(30) == 0  # one message per record batch (see DEVELOPERS.md)
    with FeatureStore(root) as store:
        store.apply()
        # One message per micro-batch: a window closes before the next message is read (in
        # larger batches an event is late only if its window closed in an earlier batch).
        options = StreamOptions(until_caught_up=True, max_batch_messages=1)
        before = _dead_letter_metric("late")
        (stats,) = store.stream(["stream_tumbling"], options=options)
        assert _dead_letter_metric("late") == before + 1
        rows = real_rows(store, "stream_tumbling")
        assert [(r["count"], r["amount_sum"]) for r in rows] == [(1, 2.5), (2, 6.5)]
        letters = TableDeadLetters(store.offline, "stream_tumbling").read().to_pylist()
        by_offset = {r["offset"]: r for r in letters}
        assert sorted(by_offset) == [1, 2, 3, 4, 5, 7]
        assert by_offset[1]["check"] == "decode"
        assert "amount" in by_offset[2]["reason"]
        assert by_offset[3]["check"] == "timestamp"
        assert by_offset[4]["check"] == "oversized"
        assert "user_id" in by_offset[5]["reason"]
        assert by_offset[7]["check"] == "late"
        assert by_offset[7]["value"] == messages[7]
        assert all(r["topic"] == topic and r["partition"] == 0 for r in letters)
        assert stats.dead_letters == 6
        assert stats.late == 1
        (run,) = store.registry.runs(view="stream_tumbling", kind="stream")
        assert run.details["dead_letters_by_check"]["late"] == 1


def test_emit_update_writes_running_values_that_end_final(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic(partitions=PARTITIONS)
    root = write_stream_project(
        tmp_path / "p", kafka_bootstrap, topic, windows=("tumbling", "lifetime"), emit="update"
    )
    events = [e for e in make_events(seed=3, per_partition=60) if e["user_id"] != FLUSH_USER]
    produce(kafka_bootstrap, topic, events)
    write_event_files(root, events)
    with FeatureStore(root) as store:
        _stream_and_batch(store, ("tumbling", "lifetime"))
        for window in ("tumbling", "lifetime"):
            # Without a flush event the newest windows are still open, yet their running
            # values are already stored, and equal to the batch rows.
            assert real_rows(store, f"stream_{window}") == real_rows(store, f"batch_{window}")


def test_stream_errors_name_the_problem(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    root = write_stream_project(tmp_path / "p", kafka_bootstrap, "no-such-topic-here")
    write_event_files(root, make_events(seed=1, per_partition=2))
    with FeatureStore(root) as store:
        store.apply()
        with pytest.raises(ConfigError, match="topic 'no-such-topic-here' does not exist"):
            store.stream(["stream_tumbling"], until_caught_up=True)
        with pytest.raises(DefinitionError, match="'batch_tumbling' reads a batch source"):
            store.stream(["batch_tumbling"], until_caught_up=True)


CHECKED = """
from headwater import Count, Entity, FeatureView, FileSource, KafkaSource, Sum, Tumbling, checks

user = Entity("user", join_keys=["user_id"])
SCHEMA = {"user_id": "int64", "page": "string", "amount": "double", "qty": "int64",
          "ts": "timestamp[ms, UTC]"}
RULES = [checks.between("amount", 0, 50, severity="quarantine"),
         checks.not_null("page", severity="quarantine")]
clicks = KafkaSource("clicks", connection="events", topic="{topic}", timestamp_field="ts",
                     schema=SCHEMA, checks=RULES)
files = FileSource("click_files", path="data/clicks.parquet", timestamp_field="ts",
                   checks=RULES)
for kind, source in (("stream", clicks), ("batch", files)):
    globals()[kind] = FeatureView(
        f"{kind}_checked", entity=user, source=source, window=Tumbling("1m"),
        features=[Count(), Sum("amount")],
        checks=[checks.between("amount_sum", 0, 60, severity="{view_severity}")],
    )
"""


@pytest.mark.parametrize("view_severity", ["quarantine", "fail"])
def test_checks_quarantine_the_same_rows_in_streaming_and_batch(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: Any, view_severity: str
) -> None:
    from headwater.errors import QualityFailed
    from headwater.quality import read_quarantine

    topic = kafka_topic(partitions=PARTITIONS)
    root = write_stream_project(tmp_path / "p", kafka_bootstrap, topic, windows=())
    (root / "defs.py").write_text(
        CHECKED.replace("{topic}", topic).replace("{view_severity}", view_severity)
    )
    events = make_events(seed=8, per_partition=80)
    for event in events:
        if event["user_id"] == FLUSH_USER:  # the closing events pass the checks
            event.update(page="end", amount=0.0)
    produce(kafka_bootstrap, topic, events)
    write_event_files(root, events)
    with FeatureStore(root) as store:
        store.apply()
        if view_severity == "fail":
            # Some window sums pass 60: the view check stops the stream before any write.
            with pytest.raises(QualityFailed, match="amount_sum"):
                store.stream(["stream_checked"], until_caught_up=True)
            assert real_rows(store, "stream_checked") == []
            assert store.registry.stream_partitions("stream_checked", topic, [0, 1, 2, 3]) == {}
            return
        store.run(["batch_checked"])
        (stats,) = store.stream(["stream_checked"], until_caught_up=True)
        assert real_rows(store, "stream_checked") == real_rows(store, "batch_checked")
        streamed = read_quarantine(store.offline, "stream_checked")
        batched = read_quarantine(store.offline, "batch_checked")
        assert streamed is not None and batched is not None
        assert stats.rows_quarantined == streamed.num_rows > 0
        assert streamed.num_rows == batched.num_rows
        reasons = sorted(streamed.column("_check").to_pylist())
        assert reasons == sorted(batched.column("_check").to_pylist())
        # Both source checks and the view check set rows aside, on both paths alike.
        assert set(reasons) == {"between(amount)", "not_null(page)", "between(amount_sum)"}
        (run,) = store.registry.runs(view="stream_checked", kind="stream")
        assert run.details["rows_quarantined"] == streamed.num_rows


def test_an_idle_partition_stops_holding_the_watermark_back(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    import threading
    import time

    topic = kafka_topic(partitions=2)
    root = write_stream_project(
        tmp_path / "p", kafka_bootstrap, topic, windows=("tumbling",), idle="1s"
    )
    write_event_files(root, [])
    minute = 1_700_000_040_000
    quiet = [{"user_id": 1, "page": "a", "amount": 1.0, "qty": 1, "ts": minute, "_partition": 1}]
    busy = [
        {
            "user_id": 2,
            "page": "a",
            "amount": 1.0,
            "qty": 1,
            "ts": minute + i * 30_000,
            "_partition": 0,
        }
        for i in range(8)
    ]
    with FeatureStore(root) as store:
        store.apply()
        options = StreamOptions(max_batch_wait_s=0.2)
        worker = threading.Thread(
            target=store.stream, args=(["stream_tumbling"],), kwargs={"options": options}
        )
        worker.start()
        try:
            produce(kafka_bootstrap, topic, quiet + busy)
            # Partition 1 stays at minute+0s while partition 0 moves 3.5 minutes on: once it
            # is idle (1 s), the watermark follows partition 0 and its windows close.
            deadline = time.monotonic() + 60
            rows: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                rows = [r for r in real_rows(store, "stream_tumbling") if r["user_id"] == 2]
                if len(rows) >= 3:
                    break
                time.sleep(0.3)
        finally:
            options.stop.set()
            worker.join(60)
        assert [r["count"] for r in rows][:3] == [2, 2, 2]
        # User 1's window [minute, minute + 1m) closed too: the watermark passed it.
        assert any(r["user_id"] == 1 for r in real_rows(store, "stream_tumbling"))


def test_cli_workers_share_the_partitions(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    import subprocess
    import sys

    topic = kafka_topic(partitions=PARTITIONS)
    root = write_stream_project(tmp_path / "p", kafka_bootstrap, topic, windows=("hopping",))
    events = make_events(seed=21, per_partition=100)
    produce(kafka_bootstrap, topic, events)
    write_event_files(root, events)
    with FeatureStore(root) as store:
        store.apply()
    command = [sys.executable, "-m", "headwater", "stream", "stream_hopping", "--workers", "2"]
    done = subprocess.run(
        [*command, "--until-caught-up", "--repo", str(root)], capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()
    with FeatureStore(root) as store:
        store.run(["batch_hopping"])
        assert real_rows(store, "stream_hopping") == real_rows(store, "batch_hopping")
        runs = store.registry.runs(view="stream_hopping", kind="stream")
        assert len(runs) == 2 and all(r.status == "success" for r in runs)
        assert sum(r.rows_in for r in runs) == len(events)
