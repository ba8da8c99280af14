"""Where a streaming view's dead letters go: a Kafka topic, or a side table of the offline store.

A dead letter is a message that could not be decoded, broke the schema, had no event time or
join key, was too large, or arrived after every window it belongs to had closed. None is
dropped silently. The table form is keyed by (topic, partition, offset), so a micro-batch
replayed after a crash records each message once; the topic form produces the message again on
replay (at-least-once) with the same key, partition and offset headers, so readers can tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.connectors.kafka.config import KafkaConnection
    from headwater.connectors.kafka.letters import DeadLetter
    from headwater.stores.offline.base import OfflineStore

DEAD_LETTER_SUFFIX = "__dead_letters"


class DeadLetterSink(Protocol):
    def write(self, letters: Sequence[DeadLetter], run_id: str) -> None:
        """Record ``letters`` durably before the micro-batch commits."""
        ...


class TopicDeadLetters:
    """Dead letters produced to ``topic`` (headers carry the check and the reason)."""

    def __init__(self, conn: KafkaConnection, topic: str) -> None:
        from headwater.connectors.kafka.letters import DeadLetterTopic

        self._topic = DeadLetterTopic(conn, topic)

    def write(self, letters: Sequence[DeadLetter], run_id: str) -> None:
        if letters:
            self._topic.send(letters)
            self._topic.flush()


def dead_letter_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("topic", pa.string()),
            ("partition", pa.int32()),
            ("offset", pa.int64()),
            ("timestamp", pa.timestamp("ms", tz="UTC")),
            ("key", pa.binary()),
            ("value", pa.binary()),
            ("check", pa.string()),
            ("reason", pa.string()),
            ("run_id", pa.string()),
            ("recorded_at", pa.timestamp("us", tz="UTC")),
        ]
    )


class TableDeadLetters:
    """Dead letters in the offline store's side table ``<view>__dead_letters``, keyed by
    (topic, partition, offset)."""

    def __init__(self, offline: OfflineStore, view_name: str) -> None:
        self.offline = offline
        self.name = view_name + DEAD_LETTER_SUFFIX
        self.location = offline.location(self.name)

    def write(self, letters: Sequence[DeadLetter], run_id: str) -> None:
        if not letters:
            return
        import pyarrow as pa

        now = datetime.now(UTC)
        columns: dict[str, list[Any]] = {
            "topic": [d.topic for d in letters],
            "partition": [d.partition for d in letters],
            "offset": [d.offset for d in letters],
            "timestamp": [d.timestamp_ms for d in letters],
            "key": [d.key for d in letters],
            "value": [d.value for d in letters],
            "check": [d.check for d in letters],
            "reason": [d.reason for d in letters],
            "run_id": [run_id] * len(letters),
            "recorded_at": [now] * len(letters),
        }
        table = pa.table(columns, schema=dead_letter_schema())
        self.offline.write_table(
            self.name, table.to_reader(), keys=["topic", "partition", "offset"], mode="insert"
        )

    def read(self) -> pa.Table:
        """Everything recorded so far (empty when nothing was)."""
        dataset = self.offline.read_table(self.name)
        return dead_letter_schema().empty_table() if dataset is None else dataset.to_table()
