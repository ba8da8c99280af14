"""The batch read of a Kafka topic (``headwater run`` over a :class:`KafkaSource`).

The topic is read from its beginning to the end offsets seen when the read starts, with
partitions assigned directly (no group join, nothing committed), decoded batch by batch
(:mod:`headwater.connectors.kafka.decode`) and handed to DuckDB as an Arrow stream.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.connectors.base import StreamScan, stream_scan
from headwater.connectors.kafka.client import (
    consumer_config,
    driver,
    kafka_connection,
    kafka_failure,
    open_consumer,
    watermarks,
)
from headwater.connectors.kafka.letters import DeadLetter
from headwater.errors import ConnectionFailed, DefinitionError
from headwater.observability import get_logger

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.connectors.kafka.config import KafkaConnection
    from headwater.definitions import Source
    from headwater.definitions.kafka import KafkaSource

log = get_logger("headwater.connectors.kafka")


# ---------------------------------------------------------------------- bounded reads
def read_topic(
    conn: KafkaConnection,
    topic: str,
    *,
    where: str,
    group_id: str = "headwater.batch",
    batch_messages: int = 10_000,
    limit: int | None = None,
    stall_timeout_s: float = 30.0,
) -> Iterator[list[Any]]:
    """Read ``topic`` from its beginning to the end offsets seen now, in lists of messages.

    Partitions are assigned directly: nothing joins the group ``group_id`` and nothing is
    committed. Messages produced after the read started are left out.

    Args:
        conn: the connection.
        topic: the topic.
        where: names the reader in errors.
        group_id: required by the client; no group is joined.
        batch_messages: the most messages per list.
        limit: stop after this many messages.
        stall_timeout_s: fail when no message arrives for this long before the end.

    Raises:
        ConnectionFailed: the read stalled, or the brokers refused it.
    """
    kafka = driver()
    marks = watermarks(conn, topic, where=where)
    ends = {p: high for p, (low, high) in marks.items() if high > low}
    pending = dict(ends)
    if not pending:
        return
    config = consumer_config(conn, group_id=group_id, enable_partition_eof=True)
    consumer = open_consumer(conn, config, where)
    read = 0
    try:
        # From the first offset kept (a position out of range resets to the earliest).
        consumer.assign([kafka.TopicPartition(topic, p, marks[p][0]) for p in pending])
        progress = time.monotonic()
        while pending:
            try:
                messages = consumer.consume(num_messages=batch_messages, timeout=0.1)
            except kafka.KafkaException as exc:
                raise kafka_failure(conn, where, exc) from None
            batch: list[Any] = []
            done: list[int] = []
            for message in messages:
                error = message.error()
                partition = message.partition()
                if error is not None:
                    if error.code() == kafka.KafkaError._PARTITION_EOF:
                        done.append(partition)
                        continue
                    if _fatal(kafka, error):
                        raise kafka_failure(conn, where, kafka.KafkaException(error))
                    log.warning("kafka read: %s", error.str(), extra={"fields": {"topic": topic}})
                    continue
                end = ends.get(partition)
                if end is None or message.offset() >= end:
                    continue
                batch.append(message)
                if message.offset() >= end - 1:
                    done.append(partition)
            for partition in done:
                if pending.pop(partition, None) is not None:
                    consumer.pause([kafka.TopicPartition(topic, partition)])
            if limit is not None and read + len(batch) >= limit:
                yield batch[: limit - read]
                return
            if batch:
                read += len(batch)
                progress = time.monotonic()
                yield batch
            elif time.monotonic() - progress > stall_timeout_s:
                stuck = ", ".join(f"{p} (end {ends[p]})" for p in sorted(pending))
                raise ConnectionFailed(
                    f"{where}: reading topic {topic!r} stalled for {stall_timeout_s:g}s before "
                    f"the end of partitions {stuck}",
                    fix="check that the brokers are up and every partition has a leader",
                )
    finally:
        consumer.close()


def _fatal(kafka: Any, error: Any) -> bool:
    """Whether a consumer error ends a read (others are transient: the client retries)."""
    codes = kafka.KafkaError
    return bool(error.fatal()) or error.code() in (
        codes.UNKNOWN_TOPIC_OR_PART,
        codes.TOPIC_AUTHORIZATION_FAILED,
        codes.GROUP_AUTHORIZATION_FAILED,
        codes._AUTHENTICATION,
        codes._SSL,
    )


# ---------------------------------------------------------------------- the batch connector
class KafkaConnector:
    """Reads a :class:`~headwater.definitions.kafka.KafkaSource` in batch: the whole topic,
    bounded by the end offsets seen when the read starts (``headwater run``)."""

    SUPPORTS_INCREMENTAL: ClassVar[bool] = False
    REQUIRES: ClassVar[tuple[str, ...]] = ("confluent_kafka",)
    EXTRA: ClassVar[str] = "kafka"
    INFER_MESSAGES: ClassVar[int] = 10_000
    """How many of the topic's first messages an undeclared schema is inferred from, at most."""

    def __init__(self, source: Source, project: ProjectConfig) -> None:
        self.source: KafkaSource = source  # type: ignore[assignment]  # registered for "kafka"
        self.where = f"kafka source {source.name!r}"
        self.conn = kafka_connection(project, self.source.connection, self.where)
        self.dead: Counter[str] = Counter()
        """Messages of the last scan left out, by check (logged, not re-sent: the streaming
        engine is the one that routes dead letters)."""
        self._first_dead = ""
        self._schema: pa.Schema | None = None

    def schema(self) -> pa.Schema:
        """The columns the source yields: the declared payload (or the one inferred from the
        topic's first messages), the key column, then the three metadata columns."""
        from headwater.connectors.kafka.decode import Decoder

        if self._schema is not None:
            return self._schema
        decoder = Decoder(self.source, self.conn)
        if decoder.schema is None:
            for messages in read_topic(
                self.conn,
                self.source.topic,
                where=self.where,
                limit=self.INFER_MESSAGES,
                batch_messages=1_000,
            ):
                decoder.decode(messages)
                if decoder.schema is not None:
                    break
        if decoder.schema is None:
            raise DefinitionError(
                f"{self.where}: cannot infer the columns of topic {self.source.topic!r}: it "
                "holds no message that decodes",
                fix='declare them: schema={"user_id": "int64", ...}',
            )
        self._schema = decoder.schema
        return self._schema

    def scan(self, con: duckdb.DuckDBPyConnection, *, checkpoint: Any = None) -> StreamScan:
        """Register a bounded read of the whole topic with ``con`` (read once, lazily)."""

        from headwater.connectors.kafka.decode import Decoder

        schema = self.schema()
        decoder = Decoder(self.source, self.conn, schema=schema)
        rows = [0]
        self.dead = Counter()

        def batches() -> Iterator[pa.RecordBatch]:
            for messages in read_topic(self.conn, self.source.topic, where=self.where):
                decoded = decoder.decode(messages)
                self._count_dead(decoded.dead)
                rows[0] += decoded.table.num_rows
                yield from decoded.table.to_batches()
            self._report_dead()

        return stream_scan(con, self.source.name, schema, batches(), rows_read=lambda: rows[0])

    def _count_dead(self, letters: list[DeadLetter]) -> None:
        for letter in letters:
            if not self.dead:
                self._first_dead = f"partition {letter.partition} offset {letter.offset}: " + (
                    letter.reason
                )
            self.dead[letter.check] += 1

    def _report_dead(self) -> None:
        if not self.dead:
            return
        total = sum(self.dead.values())
        log.warning(
            "%s: %d messages of topic %r were left out of the batch read (%s); first: %s",
            self.where,
            total,
            self.source.topic,
            ", ".join(f"{check}: {n}" for check, n in sorted(self.dead.items())),
            self._first_dead,
        )
