"""Kafka decoding: messages per second of ``Decoder.decode`` alone (no broker, no network).

The messages are built in memory as ``confluent_kafka.Message`` objects, so the numbers are the
decoder's: taking value, key, partition, offset and timestamp from each message, parsing the
payloads, the event-time check and building the Arrow table.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import (
    fmt_count,
    fmt_rows,
    machine_facts,
    markdown_table,
    package_versions,
    say,
    write_doc_section,
)

DESCRIPTION = "Kafka message decoding (JSON in bulk, Avro, raw) in messages per second"
T0 = 1_704_103_200_000
CLICKS = {"user_id": "int64", "page": "string", "amount": "double", "ts": "int64"}
AVRO = {
    "type": "record",
    "name": "Click",
    "fields": [
        {"name": "user_id", "type": "long"},
        {"name": "page", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "ts", "type": "long"},
    ],
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench kafka_decode", description=DESCRIPTION)
    parser.add_argument("--messages", type=int, default=200_000, help="messages per case")
    parser.add_argument("--batch", type=int, default=10_000, help="messages per decode() call")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (best is kept)")
    parser.add_argument("--no-doc", action="store_true", help="leave docs/benchmarks.md alone")
    return parser.parse_args(argv)


def clicks(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(7)
    return [
        {
            "user_id": rnd.randrange(100_000),
            "page": f"/product/{rnd.randrange(5_000)}",
            "amount": round(rnd.random() * 100, 2),
            "ts": T0 + i,
        }
        for i in range(n)
    ]


def as_messages(values: list[bytes]) -> list[Any]:
    from confluent_kafka import Message

    return [
        Message(
            topic="clicks",
            partition=i % 8,
            offset=i // 8,
            key=str(i % 100_000).encode(),
            value=value,
            timestamp=(1, T0 + i),
        )
        for i, value in enumerate(values)
    ]


def avro_values(records: list[dict[str, Any]]) -> list[bytes]:
    import fastavro

    schema = fastavro.parse_schema(AVRO)
    values = []
    for record in records:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, record)
        values.append(out.getvalue())
    return values


def cases(n: int) -> list[tuple[str, dict[str, Any], Callable[[], list[bytes]]]]:
    records = clicks(n)
    compact = [json.dumps(r).encode() for r in records]

    def iso() -> list[bytes]:
        out = []
        for r in records:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(r["ts"] / 1000))
            out.append(json.dumps({**r, "ts": f"{stamp}.{r['ts'] % 1000:03d}Z"}).encode())
        return out

    def one_percent_bad() -> list[bytes]:
        bad = list(compact)
        for i in range(0, n, 100):
            bad[i] = b'{"user_id": "not a number", "ts": 1}'
        return bad

    iso_schema = {**CLICKS, "ts": "timestamp[ms, UTC]"}
    return [
        ("JSON, declared schema", {"schema": CLICKS}, lambda: compact),
        ("JSON, declared schema, key_field", {"schema": CLICKS, "key_field": "k"}, lambda: compact),
        ("JSON, inferred schema", {}, lambda: compact),
        ("JSON, ISO-8601 event time", {"schema": iso_schema}, iso),
        (
            "JSON, pretty-printed",
            {"schema": CLICKS},
            lambda: [json.dumps(r, indent=2).encode() for r in records],
        ),
        ("JSON, 1% bad messages", {"schema": CLICKS}, one_percent_bad),
        (
            "Avro, declared writer schema",
            {"format": "avro", "schema": AVRO},
            lambda: avro_values(records),
        ),
        ("raw", {"format": "raw", "timestamp_field": "kafka_timestamp"}, lambda: compact),
    ]


def measure(options: dict[str, Any], messages: list[Any], batch: int, repeat: int) -> float:
    from headwater.connectors.kafka.config import KafkaConnection
    from headwater.connectors.kafka.decode import Decoder
    from headwater.definitions.kafka import KafkaSource

    options = {"timestamp_field": "ts", **options}
    conn = KafkaConnection(bootstrap_servers="127.0.0.1:9092")
    best = float("inf")
    for _ in range(repeat):
        source = KafkaSource("clicks", connection="events", topic="clicks", **options)
        decoder = Decoder(source, conn)
        started = time.perf_counter()
        for start in range(0, len(messages), batch):
            decoder.decode(messages[start : start + batch])
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    facts = machine_facts()
    versions = package_versions(
        sys.executable, ["pyarrow", "confluent-kafka", "fastavro", "duckdb"]
    )
    facts["packages"] = ", ".join(f"{k} {v}" for k, v in versions.items())
    rows = []
    for name, options, build in cases(args.messages):
        values = build()
        messages = as_messages(values)
        size = sum(len(v) for v in values)
        say(f"{name}: {len(messages)} messages")
        seconds = measure(options, messages, args.batch, args.repeat)
        rows.append(
            [
                name,
                f"{seconds:.3f}",
                fmt_count(len(messages) / seconds),
                f"{size / seconds / (1 << 20):.0f}",
            ]
        )
    table = markdown_table(["case", "seconds", "messages/s", "MiB/s"], rows, "lrrr")
    body = "\n\n".join(
        [
            f"`scripts/bench kafka_decode --messages {args.messages} --batch {args.batch}`: "
            f"{fmt_rows(args.messages)} click messages (about 80 bytes of JSON each) decoded "
            f"{args.batch} at a time by `Decoder.decode`, best of {args.repeat}; no broker.",
            "\n".join(f"- {k}: {v}" for k, v in facts.items()),
            table,
        ]
    )
    print(body)
    if not args.no_doc:
        write_doc_section("Kafka decoding", body)
    return 0
