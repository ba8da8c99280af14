"""One contender of the streaming benchmark (``benchmarks/stream.py``), in a process of its own.

    python _stream_worker.py raw  --bootstrap H:P --topic T --ends '{"0": 12, ...}' --decode pyarrow
    python _stream_worker.py quix --bootstrap H:P --topic T --ends '{...}' --redis-prefix P ...

``raw`` runs in headwater's virtualenv (``--decode pyarrow``) or in the peers one (``--decode
orjson``); ``quix`` runs in the peers virtualenv. With ``--ends`` a worker stops once it has
processed every partition up to those end offsets (the throughput phase); without it, it runs
until SIGTERM (the latency phase). A worker says ``ready <unix time>`` on stderr once its
partitions are assigned, and prints one JSON line of results on stdout when it ends.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

SESSION = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def ready() -> float:
    now = time.time()
    print(f"ready {now:.6f}", file=sys.stderr, flush=True)
    return now


def stop_event() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


# ---------------------------------------------------------------- raw consumption
def _decoder(kind: str) -> Any:
    """A function ``values -> rows decoded``: the whole micro-batch is decoded."""
    if kind == "orjson":
        import orjson

        loads = orjson.loads

        def decode_orjson(values: list[bytes]) -> int:
            rows = [loads(v) for v in values]
            return len(rows)

        return decode_orjson
    import pyarrow as pa
    import pyarrow.json as pj

    schema = pa.schema(
        [
            ("user_id", pa.int64()),
            ("page_id", pa.string()),
            ("amount", pa.float64()),
            ("event_timestamp", pa.int64()),
        ]
    )
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")

    def decode_pyarrow(values: list[bytes]) -> int:
        data = b"\n".join(values)
        table = pj.read_json(
            pa.py_buffer(data),
            read_options=pj.ReadOptions(block_size=max(1 << 20, len(data) + 1)),
            parse_options=parse,
        )
        return int(table.num_rows)

    return decode_pyarrow


def run_raw(args: argparse.Namespace) -> dict[str, Any]:
    from confluent_kafka import Consumer, TopicPartition

    decode = _decoder(args.decode)
    ends = {int(p): int(o) for p, o in json.loads(args.ends).items()} if args.ends else None
    live = ends is None
    stop = stop_event()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            **json.loads(args.settings),
        }
    )
    meta = consumer.list_topics(args.topic, timeout=15).topics[args.topic]
    partitions = sorted(meta.partitions)
    consumer.assign([TopicPartition(args.topic, p, 0) for p in partitions])
    started = ready()
    events = 0
    batches = 0
    remaining = dict(ends) if ends else {}
    remaining = {p: o for p, o in remaining.items() if o > 0}
    latencies: list[tuple[float, float]] = []
    while not stop.is_set() and (live or remaining):
        messages = consumer.consume(num_messages=args.batch, timeout=args.wait)
        good = [m for m in messages if m.error() is None]
        if not good:
            continue
        events += decode([m.value() for m in good])
        batches += 1
        done_at = time.time()
        if live:
            for m in good:
                _kind, ts = m.timestamp()  # the producer's create time, in ms
                latencies.append((ts / 1000, done_at))
        else:
            for m in good:
                p = m.partition()
                if p in remaining and m.offset() + 1 >= remaining[p]:
                    del remaining[p]
    finished = time.time()
    consumer.close()
    result: dict[str, Any] = {
        "events": events,
        "batches": batches,
        "started": started,
        "finished": finished,
        "decode": args.decode,
    }
    if live:
        result["latencies"] = latencies
    return result


# ---------------------------------------------------------------- Quix Streams
def run_quix(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    from quixstreams import Application
    from quixstreams.dataframe.windows.aggregations import Aggregator, Count, Sum
    from quixstreams.sinks.community.redis import RedisSink

    class CountDistinct(Aggregator):
        """Quix has no distinct count: the window keeps the distinct values in a list."""

        def initialize(self) -> list[Any]:
            return []

        def agg(self, old: list[Any], new: Any, timestamp: int) -> list[Any]:
            value = new.get(self.column)
            if value is not None and value not in old:
                old.append(value)
            return old

        def result(self, value: list[Any]) -> int:
            return len(value)

    ends = {int(p): int(o) for p, o in json.loads(args.ends).items()} if args.ends else None
    remaining = {p: o for p, o in (ends or {}).items() if o > 0}
    counters = {"events": 0, "first": 0.0}
    app: Any = None

    def processed(_topic: str, partition: int, offset: int) -> None:
        counters["events"] += 1
        if ends is not None and partition in remaining and offset + 1 >= remaining[partition]:
            del remaining[partition]
            if not remaining:
                app.stop()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        consumer_extra_config={**SESSION, **json.loads(args.settings)},
        state_dir=args.state_dir,
        on_message_processed=processed,
        loglevel="WARNING",
    )
    logging.getLogger("quixstreams").setLevel(logging.WARNING)
    marks: dict[str, float] = {}
    original_on_assign = app._on_assign

    def on_assign(*a: Any) -> None:  # measure from the end of the assignment, as for headwater
        original_on_assign(*a)
        marks.setdefault("started", ready())

    app._on_assign = on_assign
    topic = app.topic(
        args.topic,
        value_deserializer="json",
        timestamp_extractor=lambda value, _headers, _ts, _kind: value["event_timestamp"],
    )
    prefix = args.redis_prefix
    sink = RedisSink(
        host=args.redis_host,
        port=args.redis_port,
        db=args.redis_db,
        key_serializer=lambda key, value: f"{prefix}{key.decode()}:{value['end']}",
        value_serializer=lambda value: json.dumps(value, separators=(",", ":")),
    )
    sdf = app.dataframe(topic)
    sdf = (
        sdf.tumbling_window(duration_ms=60_000, grace_ms=args.grace_ms)
        .agg(
            count=Count(), amount_sum=Sum("amount"), page_id_count_distinct=CountDistinct("page_id")
        )
        .final(closing_strategy="partition")
    )
    sdf.sink(sink)
    if ends is not None and not remaining:
        ready()
        return {"events": 0, "started": time.time(), "finished": time.time()}
    app.run()
    return {
        "events": counters["events"],
        "started": marks.get("started", 0.0),
        "finished": time.time(),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="_stream_worker.py")
    parser.add_argument("mode", choices=["raw", "quix"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--ends", default="", help="JSON {partition: end offset}; none: live")
    parser.add_argument("--decode", choices=["pyarrow", "orjson"], default="pyarrow")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--wait", type=float, default=0.5)
    parser.add_argument("--group", default="")
    parser.add_argument("--state-dir", default="")
    parser.add_argument("--commit-interval", type=float, default=5.0)
    parser.add_argument("--grace-ms", type=int, default=5_000)
    parser.add_argument("--redis-host", default="127.0.0.1")
    parser.add_argument("--redis-port", type=int, default=6379)
    parser.add_argument("--redis-db", type=int, default=0)
    parser.add_argument("--redis-prefix", default="")
    parser.add_argument("--settings", default="{}", help="JSON: extra librdkafka consumer settings")
    args = parser.parse_args(argv)
    result = run_raw(args) if args.mode == "raw" else run_quix(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
