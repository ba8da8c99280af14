"""Dead letters: messages that did not become rows, with what failed and why, and the topic
they can be produced to (headers carry the check and the reason)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.connectors.kafka.client import driver, producer_config
from headwater.errors import ConfigError, ConnectionFailed

if TYPE_CHECKING:
    from headwater.connectors.kafka.config import KafkaConnection


CHECKS = ("decode", "schema", "oversized", "timestamp", "late")
"""What a dead letter failed: its bytes could not be decoded, its values break the schema, it
is larger than ``max_message_bytes``, it has no readable event time, or its windows had closed."""


# ---------------------------------------------------------------------- dead letters
@dataclass
class DeadLetter:
    """A message that was not turned into a row, and why.

    Attributes:
        topic, partition, offset: where the message is.
        timestamp_ms: its Kafka timestamp (``None`` when it has none).
        key, value: its bytes, as produced.
        check: what failed: ``decode``, ``schema``, ``oversized``, ``timestamp`` or ``late``.
        reason: a sentence saying what was wrong and with which field.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    check: str
    reason: str

    @classmethod
    def of(cls, message: Any, check: str, reason: str) -> DeadLetter:
        """The dead letter of a consumed ``confluent_kafka.Message``."""
        kind, stamp = message.timestamp()
        return cls(
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            timestamp_ms=stamp if kind else None,
            key=message.key(),
            value=message.value(),
            check=check,
            reason=reason,
        )

    def headers(self) -> list[tuple[str, bytes]]:
        """The headers a dead-letter topic gets: what failed, why and where the message was."""
        headers = [
            ("headwater.check", self.check),
            ("headwater.reason", self.reason),
            ("headwater.topic", self.topic),
            ("headwater.partition", str(self.partition)),
            ("headwater.offset", str(self.offset)),
        ]
        if self.timestamp_ms is not None:
            headers.append(("headwater.timestamp", str(self.timestamp_ms)))
        return [(name, value.encode()) for name, value in headers]


class DeadLetterTopic:
    """Produces dead letters to a topic: the original key and value, the reason in headers.

    Delivery is asynchronous; :meth:`flush` waits for it and raises if a letter was not
    delivered, so that a caller commits its offsets only after its dead letters are safe.
    """

    def __init__(self, conn: KafkaConnection, topic: str) -> None:
        kafka = driver()
        self.topic = topic
        self.conn = conn
        self._errors: list[str] = []
        self._sent = 0
        try:
            self._producer = kafka.Producer(producer_config(conn))
        except kafka.KafkaException as exc:
            raise ConfigError(
                f"dead-letter topic {topic!r}: the Kafka client rejected the settings: {exc}",
                fix="check the settings: of the connection (librdkafka property names)",
            ) from None

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self._errors.append(str(error))

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Queue ``letters`` for delivery (waits while the client's queue is full)."""
        for letter in letters:
            while True:
                try:
                    self._producer.produce(
                        self.topic,
                        key=letter.key,
                        value=letter.value,
                        headers=letter.headers(),
                        on_delivery=self._delivered,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
            self._sent += 1
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30) -> None:
        """Wait until every letter sent is delivered.

        Raises:
            ConnectionFailed: some letters were not delivered within ``timeout_s``, or the
                brokers refused them.
        """
        left = self._producer.flush(timeout_s)
        errors, self._errors = self._errors, []
        if left or errors:
            detail = f"; first error: {errors[0]}" if errors else ""
            raise ConnectionFailed(
                f"dead-letter topic {self.topic!r}: {left + len(errors)} of the dead letters "
                f"were not delivered within {timeout_s:g}s{detail}",
                fix=f"check that topic {self.topic!r} exists and the brokers "
                f"{self.conn.bootstrap_servers} accept writes",
            )
