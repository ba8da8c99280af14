"""Kafka sources: a topic read by the streaming engine (``headwater stream``).

Each message becomes one row. Its payload is decoded as JSON, Avro or raw bytes; three
metadata columns are always added: ``kafka_partition``, ``kafka_offset`` and ``kafka_timestamp``
(the message timestamp). ``timestamp_field`` names the event-time column: a payload field, or
``"kafka_timestamp"`` (the default) to use the message timestamp.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from headwater.definitions.durations import Duration, format_millis, to_millis
from headwater.definitions.sources import Source
from headwater.errors import DefinitionError

FORMATS = ("json", "avro", "raw")
KAFKA_PARTITION = "kafka_partition"
KAFKA_OFFSET = "kafka_offset"
KAFKA_TIMESTAMP = "kafka_timestamp"
METADATA_COLUMNS = (KAFKA_PARTITION, KAFKA_OFFSET, KAFKA_TIMESTAMP)
RAW_VALUE = "value"
"""The column holding the message bytes of a ``format="raw"`` source."""

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@dataclass(frozen=True, kw_only=True)
class KafkaSource(Source):
    """A Kafka topic.

    Args:
        name: unique source name.
        connection: the name of a ``type: kafka`` connection in ``headwater.yaml``.
        topic: the topic to read.
        format: ``json`` (one object per message), ``avro`` (Confluent wire format resolved
            through the connection's ``schema_registry_url``, or plain Avro with the inline
            ``schema``) or ``raw`` (the bytes, in a ``value`` column).
        timestamp_field: the event-time column: a payload field (epoch milliseconds, ISO-8601
            text or a timestamp) or ``"kafka_timestamp"`` (the default) for the message
            timestamp.
        created_timestamp_field: optional payload field telling when a record was written.
        allowed_lateness: how far behind the newest event of a partition an event may arrive
            and still count (``"5s"``; ``0`` for none). Windows close once the watermark passes.
        idle_timeout: a partition that delivers nothing for this long stops holding the
            watermark back.
        key_field: put the message key (UTF-8 text) in this column, for producers that key
            messages by the entity and leave it out of the payload.
        schema: for JSON, the payload columns and their Arrow types
            (``{"user_id": "int64", "amount": "double", "ts": "timestamp[ms, UTC]"}``); left out,
            the types are inferred from the first batch and kept. For Avro, the writer's schema
            (a dict or JSON text) of messages without the Confluent framing.
        dead_letter_topic: messages that cannot be decoded, break the schema or arrive after
            their windows closed are produced here with the reason in headers; left out, they
            land in the ``<view>__dead_letters`` table of the offline store.
        max_message_bytes: larger messages are dead-lettered, not decoded.
        consumer_group: prefix of the Kafka consumer groups of the streaming workers (default
            ``headwater``): the workers of a view join ``<prefix>.<view name>`` and share the
            topic's partitions; each view over the source keeps its own group and offsets.
        primary_key: optional key columns.
        description, checks, schema_mode: as for every source (:class:`Source`).
    """

    kind: ClassVar[str] = "kafka"
    __hash__ = Source.__hash__  # by kind and name: a list field is not hashable
    timestamp_field: str = KAFKA_TIMESTAMP
    connection: str
    topic: str
    format: str = "json"
    allowed_lateness: Duration = "5s"
    idle_timeout: Duration = "30s"
    key_field: str | None = None
    schema: dict[str, Any] | None = None
    dead_letter_topic: str | None = None
    max_message_bytes: int = 1_048_576
    consumer_group: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.schema, str):
            try:
                object.__setattr__(self, "schema", json.loads(self.schema))
            except ValueError as exc:
                raise DefinitionError(
                    f"kafka source {self.name!r}: schema is not valid JSON ({exc})",
                    fix="pass the schema as a dict",
                ) from exc
        super().__post_init__()
        where = self.where
        if not self.connection:
            raise DefinitionError(f"{where} has no connection", fix="connection='events'")
        for what, topic in (("topic", self.topic), ("dead_letter_topic", self.dead_letter_topic)):
            if topic is not None and not _TOPIC.match(topic):
                raise DefinitionError(
                    f"{where}: {what} {topic!r} is not a valid Kafka topic name",
                    fix="use 1-249 characters from A-Z, a-z, 0-9, '.', '_' and '-'",
                )
        if self.format not in FORMATS:
            raise DefinitionError(
                f"{where}: format {self.format!r} is not supported",
                fix=f"use one of {', '.join(FORMATS)}",
            )
        if self.format == "raw" and self.timestamp_field != KAFKA_TIMESTAMP:
            raise DefinitionError(
                f"{where}: a raw source has no payload fields, so timestamp_field must be "
                f"{KAFKA_TIMESTAMP!r}",
                fix="leave timestamp_field out or decode the payload with format='json'",
            )
        if self.max_message_bytes <= 0:
            raise DefinitionError(
                f"{where}: max_message_bytes must be positive", fix="e.g. 1_048_576"
            )
        self.lateness_ms()
        self.idle_timeout_ms()

    def lateness_ms(self) -> int:
        """``allowed_lateness`` in milliseconds (0 allowed)."""
        if self.allowed_lateness in (0, "0", "0s", "0ms"):
            return 0
        return to_millis(
            self.allowed_lateness, what=f"kafka source {self.name!r}: allowed_lateness"
        )

    def idle_timeout_ms(self) -> int:
        return to_millis(self.idle_timeout, what=f"kafka source {self.name!r}: idle_timeout")

    def group_id(self, view_name: str) -> str:
        """The consumer group of the workers computing ``view_name``."""
        return f"{self.consumer_group or 'headwater'}.{view_name}"

    def __repr__(self) -> str:
        lateness = format_millis(self.lateness_ms()) if self.lateness_ms() else "0"
        return (
            f"KafkaSource({self.name!r}, topic={self.topic!r}, format={self.format!r}, "
            f"allowed_lateness={lateness!r})"
        )
