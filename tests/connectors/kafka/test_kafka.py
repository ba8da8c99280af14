"""Kafka connector layer on a real broker: decoding (JSON, Avro, raw), dead letters, the
dead-letter topic, offsets, client settings, and the batch read of a topic through DuckDB."""

from __future__ import annotations

import io
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from pydantic import SecretStr

import headwater
from headwater.config import ProjectConfig
from headwater.connectors import open_connector
from headwater.connectors.kafka.client import (
    client_config,
    consumer_config,
    end_offsets,
    kafka_connection,
    producer_config,
)
from headwater.connectors.kafka.config import KafkaConnection
from headwater.connectors.kafka.decode import Decoder
from headwater.connectors.kafka.letters import DeadLetter, DeadLetterTopic
from headwater.connectors.kafka.schema import parse_arrow_type
from headwater.connectors.kafka.source import KafkaConnector, read_topic
from headwater.connectors.postgres.config import PostgresConnection
from headwater.definitions.kafka import KafkaSource
from headwater.errors import ConfigError, DefinitionError
from tests.helpers import offline_rows

pytestmark = pytest.mark.kafka

UTC_MS = pa.timestamp("ms", tz="UTC")
T0 = 1_704_103_200_000  # 2024-01-01T10:00:00Z
CLICKS = {"user_id": "int64", "page": "string", "amount": "double", "ts": "int64"}


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# ---------------------------------------------------------------------- helpers
def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes | None],
    *,
    key: bytes | None = None,
    keys: list[bytes | None] | None = None,
    partition: int = 0,
    timestamps: list[int] | None = None,
) -> None:
    """Produce ``values`` in order to one partition.

    ``batch.num.messages=1``: the test broker (tansu) reports a partition's high watermark as
    the first offset of its last record batch + 1, so messages batched together would lie
    past the end offsets the bounded read stops at.
    """
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1})
    for index, value in enumerate(values):
        extra: dict[str, Any] = {}
        if timestamps is not None:
            extra["timestamp"] = timestamps[index]
        producer.produce(
            topic,
            value=value,
            key=keys[index] if keys is not None else key,
            partition=partition,
            **extra,
        )
    assert producer.flush(30) == 0


def jsons(*documents: dict[str, Any]) -> list[bytes | None]:
    return [json.dumps(d).encode() for d in documents]


def connection(bootstrap: str, **values: Any) -> KafkaConnection:
    return KafkaConnection(bootstrap_servers=bootstrap, **values)


def source(topic: str, **options: Any) -> KafkaSource:
    options.setdefault("timestamp_field", "ts")
    return KafkaSource("clicks", connection="events", topic=topic, **options)


def messages(conn: KafkaConnection, topic: str) -> list[Any]:
    """Every message of ``topic`` (bounded read), partition by partition in offset order."""
    found = [m for batch in read_topic(conn, topic, where="test") for m in batch]
    return sorted(found, key=lambda m: (m.partition(), m.offset()))


def consume(conn: KafkaConnection, topic: str, count: int) -> list[Any]:
    """The first ``count`` messages of partition 0 of ``topic``, read without an end bound
    (messages the client produced in one batch lie past the test broker's high watermark)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(consumer_config(conn, group_id="test"))
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    found: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while len(found) < count and time.monotonic() < deadline:
            found += [m for m in consumer.consume(count, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return found


def decode_topic(conn: KafkaConnection, src: KafkaSource) -> tuple[list[dict[str, Any]], list[Any]]:
    decoded = Decoder(src, conn).decode(messages(conn, src.topic))
    return decoded.table.to_pylist(), decoded.dead


def letters(dead: list[DeadLetter]) -> list[tuple[int, str, str]]:
    return [(d.offset, d.check, d.reason) for d in dead]


@pytest.fixture
def conn(kafka_bootstrap: str) -> KafkaConnection:
    return connection(kafka_bootstrap)


# ---------------------------------------------------------------------- JSON
def test_declared_json_schema_gives_typed_rows_in_message_order(
    kafka_bootstrap: str, kafka_topic: Any, conn: KafkaConnection
) -> None:
    topic = kafka_topic(partitions=1)
    values = jsons(
        {"user_id": 1, "page": "/a", "amount": 2.5, "ts": T0, "unused": [1, 2]},
        {"user_id": 2, "page": "/b", "amount": 10, "ts": T0 + 1},
        {"user_id": 3, "amount": None, "ts": T0 + 2},
    )
    produce(kafka_bootstrap, topic, values, timestamps=[T0 + 100, T0 + 101, T0 + 102])
    decoder = Decoder(source(topic, schema=CLICKS), conn)
    decoded = decoder.decode(messages(conn, topic))

    assert decoded.dead == []
    assert decoded.table.schema == decoder.schema
    assert decoded.table.schema == pa.schema(
        [
            ("user_id", pa.int64()),
            ("page", pa.string()),
            ("amount", pa.float64()),
            ("ts", pa.int64()),
            ("kafka_partition", pa.int32()),
            ("kafka_offset", pa.int64()),
            ("kafka_timestamp", UTC_MS),
        ]
    )
    assert decoded.table.to_pylist() == [
        {
            "user_id": 1,
            "page": "/a",
            "amount": 2.5,
            "ts": T0,
            "kafka_partition": 0,
            "kafka_offset": 0,
            "kafka_timestamp": at(T0 + 100),
        },
        {
            "user_id": 2,
            "page": "/b",
            "amount": 10.0,
            "ts": T0 + 1,
            "kafka_partition": 0,
            "kafka_offset": 1,
            "kafka_timestamp": at(T0 + 101),
        },
        {
            "user_id": 3,
            "page": None,
            "amount": None,
            "ts": T0 + 2,
            "kafka_partition": 0,
            "kafka_offset": 2,
            "kafka_timestamp": at(T0 + 102),
        },
    ]


def test_declared_types_decimal_bool_and_timestamps(
    kafka_bootstrap: str, kafka_topic: Any, conn: KafkaConnection
) -> None:
    topic = kafka_topic(partitions=1)
    schema = {
        "id": "int32",
        "price": "decimal128(12, 2)",
        "vip": "bool",
        "seen": "timestamp[ms, UTC]",
        "day": "date32",
        "tags": "list<string>",
        "ts": "int64",
    }
    produce(
        kafka_bootstrap,
        topic,
        jsons(
            {
                "id": 7,
                "price": "12.34",
                "vip": True,
                "seen": "2024-01-01T10:00:00.123456Z",
                "day": "2024-02-29",
                "tags": ["a", "b"],
                "ts": T0,
            },
            {"id": 8, "price": 1.5, "vip": False, "seen": "2024-01-01 12:00:00+02:00", "ts": T0},
            {"id": 9, "price": "1.234", "ts": T0},
            {"id": 10, "seen": "not a time", "ts": T0},
        ),
    )
    rows, dead = decode_topic(conn, source(topic, schema=schema))
    assert [(r["id"], r["price"], r["vip"], r["seen"], r["tags"]) for r in rows] == [
        (7, Decimal("12.34"), True, datetime(2024, 1, 1, 10, 0, 0, 123000, tzinfo=UTC), ["a", "b"]),
        (8, Decimal("1.50"), False, datetime(2024, 1, 1, 10, 0, tzinfo=UTC), None),
    ]
    assert rows[0]["day"].isoformat() == "2024-02-29"
    assert letters(dead) == [
        (2, "schema", "field 'price': 1.234 has more than 2 decimal places"),
        (3, "schema", "field 'seen': cannot read 'not a time' as timestamp[ms, tz=UTC]"),
    ]


def test_bad_messages_are_dead_letters_and_good_rows_keep_their_order(
    kafka_bootstrap: str, kafka_topic: Any, conn: KafkaConnection
) -> None:
    topic = kafka_topic(partitions=1)
    good = [{"user_id": i, "page": f"/{i}", "amount": 1.0, "ts": T0 + i} for i in range(6)]
    big = json.dumps({"user_id": 4, "page": "x" * 300, "amount": 1.0, "ts": T0}).encode()
    values: list[bytes | None] = [
        json.dumps(good[0]).encode(),
        b'{"user_id": 1, "page": "/x", "amount": 1.0, "ts": ',  # truncated
        json.dumps(good[1]).encode(),
        json.dumps({"user_id": 2, "page": "/x", "amount": "abc", "ts": T0}).encode(),
        json.dumps(good[2]).encode(),
        json.dumps({"user_id": 3, "page": "/x", "amount": 1.0}).encode(),  # no event time
        big,
        json.dumps(good[3]).encode(),
        b"[1, 2, 3]",
        json.dumps({"user_id": 1.5, "ts": T0}).encode(),
        None,  # a tombstone
        json.dumps(good[4]).encode(),
        b"\xff\xfe not text",
        json.dumps({"user_id": 5, "ts": None}).encode(),
        json.dumps(good[5]).encode(),
    ]
    produce(kafka_bootstrap, topic, values, key=b"k")
    src = source(topic, schema=CLICKS, max_message_bytes=200)
    rows, dead = decode_topic(conn, src)

    assert [r["user_id"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert [r["kafka_offset"] for r in rows] == [0, 2, 4, 7, 11, 14]
    assert [r["page"] for r in rows] == [f"/{i}" for i in range(6)]
    assert letters(dead) == [
        (1, "decode", "invalid JSON at byte 50: Expecting value"),
        (3, "schema", "field 'amount': expected double, got string 'abc'"),
        (5, "timestamp", "field 'ts' (the event time) is missing or null"),
        (6, "oversized", f"the value is {len(big)} bytes, more than max_message_bytes=200"),
        (8, "decode", "expected a JSON object, got array"),
        (9, "schema", "field 'user_id': expected int64, got number 1.5"),
        (10, "decode", "the message has no value (a tombstone)"),
        (12, "decode", "invalid UTF-8 at byte 0: invalid start byte"),
        (13, "timestamp", "field 'ts' (the event time) is missing or null"),
    ]
    first = dead[0]
    assert (first.topic, first.partition, first.key) == (topic, 0, b"k")
    assert first.value == values[1]
    assert first.timestamp_ms is not None and first.timestamp_ms > 0


def test_pretty_printed_json_decodes(
    kafka_bootstrap: str, kafka_topic: Any, conn: KafkaConnection
) -> None:
    topic = kafka_topic(partitions=1)
    documents = [
        {"user_id": 1, "page": "/with\nnewline", "amount": 1.25, "ts": T0},
        {"user_id": 2, "page": "/b", "amount": 2.5, "ts": T0 + 1},
    ]
    pretty = [json.dumps(d, indent=2).encode() for d in documents]
    pretty.append(json.dumps(documents[1], indent="\t").replace("\n", "\r\n").encode())
    assert all(b"\n" in value for value in pretty)
    produce(kafka_bootstrap, topic, list(pretty))
    rows, dead = decode_topic(conn, source(topic, schema=CLICKS))
    assert dead == []
    assert [(r["user_id"], r["page"], r["amount"]) for r in rows] == [
        (1, "/with\nnewline", 1.25),
        (2, "/b", 2.5),
        (2, "/b", 2.5),
    ]


def test_an_inferred_schema_is_kept_for_later_batches(
    kafka_bootstrap: str, kafka_topic: Any, conn: KafkaConnection
) -> None:
    topic = kafka_topic(partitions=1)
    first = jsons(
        {"user_id": 1, "page": "/a", "amount": 1.5, "ts": "2024-01-01T10:00:00Z", "gone": None},
        {"user_id": 2, "page": "/b", "amount": 2.0, "ts": "2024-01-01T10:00:01Z"},
    )
    later = jsons(
        {"user_id": "three", "page": "/c", "amount": 3.0, "ts": "2024-01-01T10:00:02Z"},
        {"user_id": 4, "page": "/d", "amount": 4.0, "ts": "2024-01-01T10:00:03Z", "new": 1},
        {"user_id": 5, "page": 5, "amount": 5.0, "ts": "2024-01-01T10:00:04Z"},
    )
    produce(kafka_bootstrap, topic, first + later)
    found = messages(conn, topic)
    decoder = Decoder(source(topic), conn)
    assert decoder.schema is None

    one = decoder.decode(found[:2])
    expected = pa.schema(
        [
            ("user_id", pa.int64()),
            ("page", pa.string()),
            ("amount", pa.float64()),
            ("ts", pa.string()),  # text is never inferred as a timestamp
            ("kafka_partition", pa.int32()),
            ("kafka_offset", pa.int64()),
            ("kafka_timestamp", UTC_MS),
        ]
    )
    assert decoder.schema == expected
    assert [r["user_id"] for r in one.table.to_pylist()] == [1, 2]

    two = decoder.decode(found[2:])
    assert decoder.schema == expected
    assert two.table.schema == expected
    assert [(r["user_id"], r["page"]) for r in two.table.to_pylist()] == [(4, "/d")]
    assert letters(two.dead) == [
        (2, "schema", "field 'user_id': expected int64, got string 'three'"),
        (4, "schema", "field 'page': expected string, got number 5"),
    ]


def test_event_times_in_epoch_milliseconds_iso_text_or_timestamps(
    kafka_bootstrap: str, kafka_topic: Any, conn: KafkaConnection
) -> None:
    topic = kafka_topic(partitions=1)
    stamps = [
        "2024-01-01T10:00:00Z",
        "2024-01-01T11:00:00+01:00",
        "2024-01-01 10:00:00",
        "2024-01-01T10:00:00.5Z",
        "yesterday",
        "",
    ]
    produce(kafka_bootstrap, topic, jsons(*({"n": i, "ts": s} for i, s in enumerate(stamps))))

    text_rows, text_dead = decode_topic(conn, source(topic, schema={"n": "int64", "ts": "string"}))
    assert [(r["n"], r["ts"]) for r in text_rows] == [(i, stamps[i]) for i in range(4)]
    assert letters(text_dead) == [
        (4, "timestamp", "field 'ts' (the event time): cannot read 'yesterday' as a time"),
        (5, "timestamp", "field 'ts' (the event time): cannot read '' as a time"),
    ]

    typed = source(topic, schema={"n": "int64", "ts": "timestamp[ms, UTC]"})
    typed_rows, typed_dead = decode_topic(conn, typed)
    ten = datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert [r["ts"] for r in typed_rows] == [ten, ten, ten, ten.replace(microsecond=500_000)]
    assert [d.check for d in typed_dead] == ["timestamp", "timestamp"]

    epoch = kafka_topic(partitions=1)
    produce(kafka_bootstrap, epoch, jsons({"n": 1, "ts": T0}, {"n": 2, "ts": -1}, {"n": 3}))
    epoch_rows, epoch_dead = decode_topic(conn, source(epoch, schema={"n": "int64", "ts": "int64"}))
    assert [(r["n"], r["ts"]) for r in epoch_rows] == [(1, T0), (2, -1)]
    assert letters(epoch_dead) == [
        (2, "timestamp", "field 'ts' (the event time) is missing or null")
    ]


def test_key_field_and_the_message_timestamp_as_event_time(
    kafka_bootstrap: str, kafka_topic: Any, conn: KafkaConnection
) -> None:
    topic = kafka_topic(partitions=1)
    produce(
        kafka_bootstrap,
        topic,
        jsons({"page": "/a"}, {"page": "/b"}, {"page": "/c"}, {"page": "/d"}),
        keys=[b"user-1", None, b"\xc3\x28", "usér-2".encode()],
        timestamps=[T0, T0 + 1, T0 + 2, T0 + 3],
    )
    src = KafkaSource(
        "clicks",
        connection="events",
        topic=topic,
        key_field="user_key",
        schema={"page": "string"},
    )
    decoder = Decoder(src, conn)
    assert decoder.schema is not None
    assert decoder.schema.names == [
        "page",
        "user_key",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
    ]
    decoded = decoder.decode(messages(conn, topic))
    assert [
        (r["page"], r["user_key"], r["kafka_timestamp"]) for r in decoded.table.to_pylist()
    ] == [
        ("/a", "user-1", at(T0)),
        ("/b", None, at(T0 + 1)),
        ("/d", "usér-2", at(T0 + 3)),
    ]
    assert letters(decoded.dead) == [
        (2, "decode", "the message key is not UTF-8 text (byte 0): invalid continuation byte")
    ]


def test_raw_messages_keep_their_bytes(
    kafka_bootstrap: str, kafka_topic: Any, conn: KafkaConnection
) -> None:
    topic = kafka_topic(partitions=1)
    produce(
        kafka_bootstrap, topic, [b"\x00\x01binary", b"", None, b"x" * 64], timestamps=[1, 2, 3, 4]
    )
    src = KafkaSource("raw", connection="events", topic=topic, format="raw", max_message_bytes=32)
    rows, dead = decode_topic(conn, src)
    assert [(r["value"], r["kafka_offset"]) for r in rows] == [
        (b"\x00\x01binary", 0),
        (b"", 1),
        (None, 2),
    ]
    assert letters(dead) == [
        (3, "oversized", "the value is 64 bytes, more than max_message_bytes=32")
    ]


def test_unknown_declared_types_and_bad_event_times_name_the_column() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_arrow_type("integer", where="kafka source 'clicks'", column="user_id")
    message = str(info.value)
    assert "kafka source 'clicks'" in message
    assert "'user_id'" in message and "'integer'" in message
    assert "int64" in message  # the fix lists valid types
    conn = connection("127.0.0.1:1")
    with pytest.raises(DefinitionError, match=r"column 'when'.*unknown time zone 'Mars/Base'"):
        Decoder(source("t", schema={"when": "timestamp[ms, Mars/Base]", "ts": "int64"}), conn)
    with pytest.raises(
        DefinitionError, match=r"timestamp_field 'ts' is double, which is not a time"
    ):
        Decoder(source("t", schema={"ts": "double"}), conn)
    with pytest.raises(DefinitionError, match=r"timestamp_field 'ts' is not a payload column"):
        Decoder(source("t", schema={"when": "int64"}), conn)
    with pytest.raises(DefinitionError, match=r"a name of a column headwater adds"):
        Decoder(source("t", key_field="user", schema={"user": "string", "ts": "int64"}), conn)
    assert parse_arrow_type(
        "timestamp[us, tz=Europe/Paris]", where="w", column="c"
    ) == pa.timestamp("us", tz="Europe/Paris")
    assert parse_arrow_type("Decimal(10, 3)", where="w", column="c") == pa.decimal128(10, 3)


# ---------------------------------------------------------------------- Avro
ORDER_SCHEMA = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "order_id", "type": "long"},
        {"name": "qty", "type": "int"},
        {"name": "amount", "type": "double"},
        {"name": "ratio", "type": "float"},
        {"name": "paid", "type": "boolean"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "blob", "type": "bytes"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
ORDER_ARROW = pa.schema(
    [
        ("order_id", pa.int64()),
        ("qty", pa.int32()),
        ("amount", pa.float64()),
        ("ratio", pa.float32()),
        ("paid", pa.bool_()),
        ("note", pa.string()),
        ("blob", pa.binary()),
        ("ts", UTC_MS),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("kafka_timestamp", UTC_MS),
    ]
)


def avro(record: dict[str, Any], schema: dict[str, Any] = ORDER_SCHEMA) -> bytes:
    import fastavro

    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


def order(n: int, **changes: Any) -> dict[str, Any]:
    record = {
        "order_id": n,
        "qty": n * 2,
        "amount": n + 0.5,
        "ratio": 0.25,
        "paid": n % 2 == 0,
        "note": None if n % 2 else f"note {n}",
        "blob": bytes([n]),
        "ts": at(T0 + n),
    }
    record.update(changes)
    return record


def test_avro_with_the_declared_writer_schema(
    kafka_bootstrap: str, kafka_topic: Any, conn: KafkaConnection
) -> None:
    topic = kafka_topic(partitions=1)
    values: list[bytes | None] = [avro(order(1)), avro(order(2))[:-3], avro(order(3)), b"\x02"]
    produce(kafka_bootstrap, topic, values)
    src = source(topic, format="avro", schema=ORDER_SCHEMA)
    decoder = Decoder(src, conn)
    assert decoder.schema == ORDER_ARROW
    decoded = decoder.decode(messages(conn, topic))
    rows = decoded.table.to_pylist()
    assert [{k: r[k] for k in ORDER_SCHEMA_NAMES} for r in rows] == [order(1), order(3)]
    assert [d.offset for d in decoded.dead] == [1, 3]
    assert {d.check for d in decoded.dead} == {"schema"}
    assert all("does not fit the declared schema" in d.reason for d in decoded.dead)


ORDER_SCHEMA_NAMES = [f["name"] for f in ORDER_SCHEMA["fields"]]


class _Registry(BaseHTTPRequestHandler):
    """A minimal Confluent schema registry: ``GET /schemas/ids/<id>`` and nothing else."""

    schemas: dict[int, dict[str, Any]] = {}
    requests: list[str] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        parts = self.path.split("?")[0].strip("/").split("/")
        schema = None
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
            schema = self.schemas.get(int(parts[2]))
        if schema is None:
            body, status = {"error_code": 40403, "message": "Schema not found"}, 404
        else:
            body, status = {"schema": json.dumps(schema)}, 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[str]:
    """URL of a schema registry serving ids 1 (the order schema) and 2 (with a new field)."""
    evolved = dict(ORDER_SCHEMA)
    evolved["fields"] = [
        *ORDER_SCHEMA["fields"],
        {"name": "coupon", "type": "string", "default": ""},
    ]
    _Registry.schemas = {1: ORDER_SCHEMA, 2: evolved}
    _Registry.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def framed(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + payload


def test_avro_in_the_confluent_wire_format_through_a_schema_registry(
    kafka_bootstrap: str, kafka_topic: Any, registry: str
) -> None:
    topic = kafka_topic(partitions=1)
    evolved = _Registry.schemas[2]
    values: list[bytes | None] = [
        framed(1, avro(order(1))),
        framed(99, avro(order(2))),  # unknown schema id
        framed(2, avro({**order(3), "coupon": "C3"}, evolved)),
        b"\x01" + framed(1, avro(order(4)))[1:],  # bad magic byte
        framed(1, avro(order(5))),
        b"\x00\x00",  # shorter than the header
        framed(1, avro(order(6))) + b"\x00",  # trailing bytes
        framed(99, avro(order(7))),
    ]
    produce(kafka_bootstrap, topic, values)
    conn = connection(kafka_bootstrap, schema_registry_url=registry)
    decoder = Decoder(source(topic, format="avro"), conn)
    assert decoder.schema is None
    decoded = decoder.decode(messages(conn, topic))

    assert decoder.schema == ORDER_ARROW  # from the first schema met (id 1)
    rows = decoded.table.to_pylist()
    assert [{k: r[k] for k in ORDER_SCHEMA_NAMES} for r in rows] == [order(1), order(3), order(5)]
    assert letters(decoded.dead) == [
        (1, "schema", "unknown schema id 99: not in the schema registry"),
        (
            3,
            "decode",
            "not in the Confluent wire format: the first byte is 0x01, not the magic byte 0x00",
        ),
        (5, "decode", "not in the Confluent wire format: 2 bytes, less than the 5-byte header"),
        (6, "schema", "the record does not fit schema id 1: 1 bytes left after it"),
        (7, "schema", "unknown schema id 99: not in the schema registry"),
    ]
    # each known id is fetched once; an unknown id once per batch
    fetched = [path.split("?")[0] for path in _Registry.requests]
    assert sorted(fetched) == ["/schemas/ids/1", "/schemas/ids/2", "/schemas/ids/99"]


def test_avro_without_a_schema_or_a_registry_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"needs the writer schema.*schema_registry_url"):
        Decoder(source("t", format="avro"), connection("127.0.0.1:1"))


# ---------------------------------------------------------------------- dead-letter topic
def test_dead_letters_round_trip_through_a_topic(
    kafka_bootstrap: str, kafka_topic: Any, conn: KafkaConnection
) -> None:
    topic = kafka_topic(partitions=1)
    dlq = kafka_topic(partitions=1, name="dlq")
    produce(
        kafka_bootstrap,
        topic,
        [b'{"ts": 1, "user_id": "x"}', b"not json", b'{"ts": 2, "user_id": 1}'],
        keys=[b"a", None, b"c"],
        timestamps=[T0, T0 + 1, T0 + 2],
    )
    decoded = Decoder(source(topic, schema=CLICKS), conn).decode(messages(conn, topic))
    assert len(decoded.dead) == 2
    sink = DeadLetterTopic(conn, dlq)
    sink.send(decoded.dead)
    sink.flush(30)

    sent = consume(conn, dlq, 2)
    assert [(m.key(), m.value()) for m in sent] == [
        (b"a", b'{"ts": 1, "user_id": "x"}'),
        (None, b"not json"),
    ]
    headers = [dict(m.headers()) for m in sent]
    assert headers[0] == {
        "headwater.check": b"schema",
        "headwater.reason": b"field 'user_id': expected int64, got string 'x'",
        "headwater.topic": topic.encode(),
        "headwater.partition": b"0",
        "headwater.offset": b"0",
        "headwater.timestamp": str(T0).encode(),
    }
    assert headers[1]["headwater.check"] == b"decode"
    assert headers[1]["headwater.offset"] == b"1"
    assert headers[1]["headwater.reason"].startswith(b"invalid JSON at byte 0")


def test_dead_letters_that_are_not_delivered_fail_the_flush() -> None:
    from headwater.errors import ConnectionFailed

    nowhere = connection("127.0.0.1:9", settings={"message.timeout.ms": 1500})
    sink = DeadLetterTopic(nowhere, "dead")
    sink.send([DeadLetter("t", 0, 0, None, None, b"v", "decode", "bad")])
    with pytest.raises(ConnectionFailed) as info:
        sink.flush(10)
    assert "dead-letter topic 'dead': 1 of the dead letters were not delivered" in str(info.value)
    assert "127.0.0.1:9" in str(info.value)


# ---------------------------------------------------------------------- offsets, bounded reads
def test_end_offsets_and_a_read_bounded_by_them(
    kafka_bootstrap: str, kafka_topic: Any, conn: KafkaConnection
) -> None:
    topic = kafka_topic(partitions=3)
    produce(kafka_bootstrap, topic, [b"a"] * 4, partition=0)
    produce(kafka_bootstrap, topic, [b"b"] * 2, partition=2)
    assert end_offsets(conn, topic) == {0: 4, 1: 0, 2: 2}

    reader = read_topic(conn, topic, where="test", batch_messages=1)
    first = next(reader)  # the end offsets are fixed when the read starts
    produce(kafka_bootstrap, topic, [b"late"] * 3, partition=1)
    produce(kafka_bootstrap, topic, [b"late"] * 1, partition=0)
    rest = [m for batch in reader for m in batch]
    seen = sorted((m.partition(), m.offset(), m.value()) for m in [*first, *rest])
    assert seen == [(0, i, b"a") for i in range(4)] + [(2, i, b"b") for i in range(2)]
    assert end_offsets(conn, topic) == {0: 5, 1: 3, 2: 2}

    with pytest.raises(DefinitionError, match=r"topic 'no-such-topic-at-all' does not exist"):
        end_offsets(conn, "no-such-topic-at-all")


# ---------------------------------------------------------------------- settings
def test_client_settings_carry_security_files_and_pass_settings_through() -> None:
    conn = KafkaConnection(
        bootstrap_servers="k1:9093,k2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="app",
        sasl_password=SecretStr("sasl-secret"),
        ssl_ca_location="/etc/ca.pem",
        ssl_certificate_location="/etc/client.pem",
        ssl_key_location="/etc/client.key",
        ssl_key_password=SecretStr("key-secret"),
        schema_registry_url=SecretStr("https://u:registry-secret@registry:8081"),
        settings={"client.id": "me", "session.timeout.ms": 10000, "enable.auto.commit": True},
    )
    settings = client_config(conn)
    assert settings.pop("logger").name == "headwater.kafka.client"
    assert settings == {
        "bootstrap.servers": "k1:9093,k2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "app",
        "sasl.password": "sasl-secret",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.certificate.location": "/etc/client.pem",
        "ssl.key.location": "/etc/client.key",
        "ssl.key.password": "key-secret",
        "client.id": "me",
        "session.timeout.ms": "10000",
        "enable.auto.commit": "true",
    }
    consumer = consumer_config(conn, group_id="g", enable_partition_eof=True)
    assert consumer["group.id"] == "g"
    assert consumer["enable.auto.commit"] is False  # never from settings
    assert consumer["session.timeout.ms"] == "10000"  # the user's setting wins
    assert consumer["heartbeat.interval.ms"] == 1000
    assert consumer["auto.offset.reset"] == "earliest"
    assert consumer["enable.partition.eof"] is True
    assert consumer_config(connection("k:1"), group_id="g")["session.timeout.ms"] == 6000
    producer = producer_config(conn)
    assert producer["acks"] == "all" and producer["enable.idempotence"] is True
    assert producer["sasl.password"] == "sasl-secret"
    shown = repr(conn) + str(conn.model_dump())
    for secret in ("sasl-secret", "key-secret", "registry-secret"):
        assert secret not in shown


def _project(root: Path, connections: dict[str, Any]) -> ProjectConfig:
    return ProjectConfig(project="t", connections=connections, root=root)


def test_connection_errors_name_the_source_and_the_fix(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        {
            "db": PostgresConnection(dsn=SecretStr("postgresql://u:pw@h/db")),
            "bus": KafkaConnection(bootstrap_servers="k:9092", ssl_ca_location="certs/ca.pem"),
        },
    )
    where = "kafka source 'clicks'"
    with pytest.raises(ConfigError) as missing:
        kafka_connection(project, "events", where)
    assert "kafka source 'clicks': connection 'events' is not defined" in str(missing.value)
    assert "defined: bus, db" in str(missing.value)
    assert "type: kafka" in str(missing.value)
    with pytest.raises(ConfigError) as wrong:
        kafka_connection(project, "db", where)
    assert "connection 'db' is of type 'postgres', not kafka" in str(wrong.value)
    assert "pw" not in str(wrong.value)
    found = kafka_connection(project, "bus", where)
    assert found.ssl_ca_location == str(tmp_path / "certs" / "ca.pem")
    on_db = KafkaSource("clicks", connection="db", topic="t")
    with pytest.raises(ConfigError, match=r"connection 'db' is of type 'postgres', not kafka"):
        open_connector(on_db, project)


# ---------------------------------------------------------------------- batch reads
DEFS = """
from headwater import Count, Entity, FeatureView, KafkaSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
clicks = KafkaSource(
    "clicks",
    connection="events",
    topic=TOPIC,
    timestamp_field="ts",
    key_field="user_key",
    schema=SCHEMA,
)
click_facts = FeatureView(
    "click_facts",
    entity=user,
    source=clicks,
    features={"page": "page", "amount": "amount", "user_key": "user_key"},
)
daily = FeatureView(
    "daily",
    entity=user,
    source=clicks,
    window=Tumbling("1d"),
    features=[Sum("amount", name="amount_sum"), Count(name="clicks")],
)
"""
DAY = 86_400_000


def kafka_project(root: Path, bootstrap: str, topic: str, schema: Any) -> headwater.FeatureStore:
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "project": "t",
        "connections": {"events": {"type": "kafka", "bootstrap_servers": bootstrap}},
    }
    (root / "headwater.yaml").write_text(yaml.safe_dump(config))
    header = f"TOPIC = {topic!r}\nSCHEMA = {schema!r}\n"
    (root / "defs.py").write_text(header + textwrap.dedent(DEFS).lstrip())
    return headwater.FeatureStore(root)


def test_headwater_run_computes_views_from_a_whole_topic(
    kafka_bootstrap: str, kafka_topic: Any, tmp_path: Path
) -> None:
    topic = kafka_topic(partitions=3)
    events = [
        {"user_id": u, "page": f"/p{i}", "amount": float(i), "ts": T0 + i * DAY // 2}
        for i in range(12)
        for u in [i % 3]
    ]
    for partition in range(3):
        mine = [e for e in events if e["user_id"] == partition]
        values = jsons(*mine)
        if partition == 1:
            values.insert(1, b"not json")  # left out, with a warning
        produce(kafka_bootstrap, topic, values, partition=partition, key=f"u{partition}".encode())

    store = kafka_project(tmp_path / "p", kafka_bootstrap, topic, CLICKS)
    try:
        connector = open_connector(store.definitions.sources["clicks"], store.config)
        assert isinstance(connector, KafkaConnector)
        assert connector.schema().names == [*CLICKS, "user_key", *_META]
        store.apply()
        results = {r.view: r for r in store.run()}
        assert results["click_facts"].rows_in == 12
        assert offline_rows(store, "click_facts") == sorted(
            (
                {
                    "amount": e["amount"],
                    "event_timestamp": at(e["ts"]),
                    "page": e["page"],
                    "user_id": e["user_id"],
                    "user_key": f"u{e['user_id']}",
                }
                for e in events
            ),
            key=lambda r: (r["amount"], r["event_timestamp"], r["page"], r["user_id"]),
        )
        daily: dict[tuple[int, datetime], list[float]] = {}
        for e in events:
            end = at((e["ts"] // DAY + 1) * DAY)
            daily.setdefault((e["user_id"], end), []).append(e["amount"])
        got = {
            (r["user_id"], r["event_timestamp"]): (r["amount_sum"], r["clicks"])
            for r in offline_rows(store, "daily")
        }
        assert got == {key: (sum(v), len(v)) for key, v in daily.items()}
    finally:
        store.close()


_META = ["kafka_partition", "kafka_offset", "kafka_timestamp"]


def test_the_schema_of_an_undeclared_topic_is_inferred_from_its_first_messages(
    kafka_bootstrap: str, kafka_topic: Any, tmp_path: Path
) -> None:
    topic = kafka_topic(partitions=2)
    produce(kafka_bootstrap, topic, [b"garbage", *jsons({"user_id": 1, "page": "/a", "ts": T0})])
    produce(kafka_bootstrap, topic, jsons({"user_id": 2, "page": "/b", "ts": T0 + 1}), partition=1)
    project = _project(tmp_path, {"events": connection(kafka_bootstrap)})
    connector = KafkaConnector(source(topic), project)
    schema = connector.schema()
    assert schema == pa.schema(
        [
            ("user_id", pa.int64()),
            ("page", pa.string()),
            ("ts", pa.int64()),
            ("kafka_partition", pa.int32()),
            ("kafka_offset", pa.int64()),
            ("kafka_timestamp", UTC_MS),
        ]
    )
    import duckdb

    con = duckdb.connect()
    scan = connector.scan(con)
    assert scan.one_shot
    rows = con.sql(f"SELECT user_id, page FROM {scan.relation} ORDER BY user_id").fetchall()
    assert rows == [(1, "/a"), (2, "/b")]
    assert scan.rows_read() == 2
    assert dict(connector.dead) == {"decode": 1}

    empty = kafka_topic(partitions=1)
    with pytest.raises(DefinitionError, match=r"cannot infer the columns of topic"):
        KafkaConnector(source(empty), project).schema()
