"""Shared pieces of the streaming tests: a project with Kafka and file views over the same
events, a producer, and readers of the final offline and online contents."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from tests.helpers import offline_rows, write_parquet

PARTITIONS = 4
LATENESS_MS = 5_000
FLUSH_USER = -1
"""Entity of the last event of every partition, far in the future, that closes every window
of the real events; its own rows are left out of comparisons."""

VIEWS = textwrap.dedent(
    """
    from headwater import (
        Avg, Count, CountDistinct, Entity, FeatureView, FileSource, Hopping, KafkaSource,
        Last, Max, Min, Sum, Tumbling,
    )

    user = Entity("user", join_keys=["user_id"])
    SCHEMA = {{
        "user_id": "int64", "page": "string", "amount": "double", "qty": "int64",
        "ts": "timestamp[ms, UTC]",
    }}
    clicks = KafkaSource(
        "clicks", connection="events", topic="{topic}", timestamp_field="ts",
        allowed_lateness="5s", schema=SCHEMA, idle_timeout="{idle}", consumer_group={group!r},
    )
    files = FileSource("click_files", path="data/clicks.parquet", timestamp_field="ts")

    def features():
        return [
            Count(), Sum("amount"), Sum("qty"), Avg("amount"), Min("amount"), Max("page"),
            CountDistinct("page"), Last("page"), Count("amount", name="amount_count"),
        ]

    WINDOWS = {{"tumbling": Tumbling("1m"), "hopping": Hopping(size="3m", every="1m"),
               "lifetime": None}}
    for name in {windows!r}:
        for kind, source in (("stream", clicks), ("batch", files)):
            globals()[f"{{kind}}_{{name}}"] = FeatureView(
                f"{{kind}}_{{name}}", entity=user, source=source, features=features(),
                window=WINDOWS[name], emit="{emit}",
            )
    """
)


def write_stream_project(
    root: Path,
    bootstrap: str,
    topic: str,
    *,
    windows: tuple[str, ...] = ("tumbling", "hopping", "lifetime"),
    online: dict[str, Any] | None = None,
    emit: str = "final",
    idle: str = "30s",
    group: str | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "project": "s",
        "connections": {"events": {"type": "kafka", "bootstrap_servers": bootstrap}},
    }
    if online is not None:
        config["online_store"] = online
    (root / "headwater.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "defs.py").write_text(
        VIEWS.format(
            topic=topic,
            windows=list(windows),
            emit=emit,
            idle=idle,
            # Unique per topic and project: a long-lived broker keeps groups of earlier sessions.
            group=group or f"hw-{topic}-{root.parent.name}-{root.name}",
        )
    )
    return root


def make_events(seed: int, per_partition: int, users: int = 20) -> list[dict[str, Any]]:
    """Events per partition in event-time order up to the allowed lateness, with times on window
    boundaries; every entity lives in one partition. The last event of each partition is the
    flush event."""
    rng = random.Random(seed)
    base = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    events: list[dict[str, Any]] = []
    for partition in range(PARTITIONS):
        clock = base
        for _ in range(per_partition):
            clock += rng.choice([0, 1, 250, 1_000, 3_000, 59_999, 60_000])
            if rng.random() < 0.1:  # exactly on a window boundary
                clock += 60_000 - clock % 60_000
                ts = clock
            else:
                ts = clock - rng.randrange(LATENESS_MS)
            events.append(
                {
                    "user_id": rng.randrange(users) * PARTITIONS + partition,
                    "page": rng.choice(["home", "cart", "pay", "faq", None]),
                    "amount": None if rng.random() < 0.05 else rng.randrange(-40, 400) / 4,
                    "qty": rng.randrange(0, 9),
                    "ts": ts,
                    "_partition": partition,
                }
            )
        events.append(
            {
                "user_id": FLUSH_USER,
                "page": None,
                "amount": None,
                "qty": 0,
                "ts": clock + 10 * 86_400_000,
                "_partition": partition,
            }
        )
    return events


def produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    """Produce ``events`` to their partitions, keyed by user. The last message of each partition
    goes in a record batch of its own: the test broker reports a partition's end offset as the
    start of its last record batch + 1 (see DEVELOPERS.md), so this keeps end offsets exact."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    last: dict[int, dict[str, Any]] = {}
    for event in events:
        last[event["_partition"]] = event
    for batch in ([e for e in events if last[e["_partition"]] is not e], list(last.values())):
        for event in batch:
            payload = {k: v for k, v in event.items() if not k.startswith("_")}
            producer.produce(
                topic,
                key=str(event["user_id"]).encode(),
                value=json.dumps(payload).encode(),
                partition=event["_partition"],
            )
        assert producer.flush(30) == 0


def write_event_files(root: Path, events: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(
        [{k: v for k, v in e.items() if not k.startswith("_")} for e in events],
        schema=pa.schema(
            [
                ("user_id", pa.int64()),
                ("page", pa.string()),
                ("amount", pa.float64()),
                ("qty", pa.int64()),
                ("ts", pa.timestamp("ms", tz="UTC")),
            ]
        ),
    )
    write_parquet(root, "data/clicks.parquet", table)


def real_rows(store: Any, view: str) -> list[dict[str, Any]]:
    return [r for r in offline_rows(store, view) if r["user_id"] != FLUSH_USER]


def online_rows(store: Any, view: str, users: list[int]) -> list[dict[str, Any]]:
    """Latest row per entity as the online store serves it."""
    found = store.online.read(store.view(view), [(u,) for u in users])
    return [
        {"user_id": u, "ts": row.event_ts_ms, **row.values}
        for u, row in zip(users, found, strict=True)
        if row is not None
    ]
