"""Kafka: client settings, offsets, dead-letter topics, and the batch read of a whole topic.

The streaming engine consumes topics through consumer groups (``headwater stream``); this module
gives it the client settings (:func:`consumer_config`, :func:`producer_config`), the topic's end
offsets and the dead-letter sink. :class:`KafkaConnector` is the batch side: ``headwater run``
over a Kafka source reads the topic from its beginning to the end offsets seen when the read
starts, with partitions assigned directly (no group join, nothing committed), decodes it batch
by batch (:mod:`headwater.connectors.kafka_decode`) and hands DuckDB an Arrow stream.

confluent-kafka is imported inside functions only; without it a clear error names the extra:
``pip install 'headwater[kafka]'``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.connectors.streams import StreamScan
from headwater.errors import ConfigError, ConnectionFailed, DefinitionError, require
from headwater.observability import get_logger

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.config.models import KafkaConnection
    from headwater.definitions import Source
    from headwater.definitions.kafka import KafkaSource

log = get_logger("headwater.connectors.kafka")
_client_log = get_logger("headwater.kafka.client")
"""Where the Kafka client's own messages go (through headwater's redacting handlers)."""

CHECKS = ("decode", "schema", "oversized", "timestamp", "late")
"""What a dead letter failed: its bytes could not be decoded, its values break the schema, it
is larger than ``max_message_bytes``, it has no readable event time, or its windows had closed."""

_TLS_FILES = ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location")


def _driver() -> Any:
    return require("confluent_kafka", "kafka")


# ---------------------------------------------------------------------- client settings
def client_config(conn: KafkaConnection) -> dict[str, Any]:
    """librdkafka settings shared by consumers, producers and admin clients.

    ``bootstrap.servers``, ``security.protocol``, the ``sasl.*`` and ``ssl.*`` options of the
    connection, then its ``settings`` passed through (they win), and ``logger``: the client's
    own log lines go to the ``headwater.kafka.client`` logger. The result holds secrets: never
    log it.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": conn.bootstrap_servers,
        "security.protocol": conn.security_protocol,
    }
    optional = {
        "sasl.mechanism": conn.sasl_mechanism,
        "sasl.username": conn.sasl_username,
        "sasl.password": conn.sasl_password.get_secret_value() if conn.sasl_password else None,
        "ssl.ca.location": conn.ssl_ca_location,
        "ssl.certificate.location": conn.ssl_certificate_location,
        "ssl.key.location": conn.ssl_key_location,
        "ssl.key.password": conn.ssl_key_password.get_secret_value()
        if conn.ssl_key_password
        else None,
    }
    config.update({key: value for key, value in optional.items() if value is not None})
    config.update({key: value.get_secret_value() for key, value in conn.settings.items()})
    config.setdefault("logger", _client_log)
    return config


def consumer_config(conn: KafkaConnection, *, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Consumer settings: offsets are committed by headwater only, never automatically.

    Defaults (the connection's ``settings`` win over them): ``auto.offset.reset=earliest``,
    ``session.timeout.ms=6000`` and ``heartbeat.interval.ms=1000`` (a group forms in seconds),
    ``enable.partition.eof=false``, ``fetch.queue.backoff.ms=100`` (librdkafka's default of a
    second caps a consumer that drains its queue in large batches). ``enable.auto.commit`` is
    always false.

    Args:
        conn: the connection.
        group_id: the consumer group.
        overrides: settings that win over everything; ``enable_partition_eof=True`` stands for
            ``enable.partition.eof`` (librdkafka names use dots, never underscores).
    """
    config: dict[str, Any] = {
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "enable.partition.eof": False,
        "fetch.queue.backoff.ms": 100,
    }
    config.update(client_config(conn))
    config["group.id"] = group_id
    config["enable.auto.commit"] = False
    config.update({key.replace("_", "."): value for key, value in overrides.items()})
    return config


def producer_config(conn: KafkaConnection) -> dict[str, Any]:
    """Producer settings: every write acknowledged by all in-sync replicas, no duplicates on
    retry (``acks=all``, ``enable.idempotence=true``), unless the connection's settings say
    otherwise."""
    config: dict[str, Any] = {"acks": "all", "enable.idempotence": True, "linger.ms": 5}
    config.update(client_config(conn))
    return config


def kafka_connection(project: ProjectConfig, name: str, where: str) -> KafkaConnection:
    """The ``type: kafka`` connection ``name`` of ``headwater.yaml``, TLS files resolved.

    Args:
        project: the project configuration.
        name: the connection's name.
        where: names the user in errors (``"kafka source 'clicks'"``).

    Raises:
        ConfigError: no such connection, or a connection of another type.
    """
    from headwater.config.models import KafkaConnection

    conn = project.connections.get(name)
    if conn is None:
        known = ", ".join(sorted(project.connections)) or "none"
        raise ConfigError(
            f"{where}: connection {name!r} is not defined in headwater.yaml (defined: {known})",
            fix=f'add connections: {{{name}: {{type: kafka, bootstrap_servers: "host:9092"}}}}'
            " to headwater.yaml, or name a defined connection",
        )
    if not isinstance(conn, KafkaConnection):
        raise ConfigError(
            f"{where}: connection {name!r} is of type {conn.type!r}, not kafka",
            fix=f"point the source at a connection of type kafka, or change {name!r} to "
            "type: kafka",
        )
    files = {key: getattr(conn, key) for key in _TLS_FILES if getattr(conn, key)}
    if files:
        conn = conn.model_copy(update={k: project.resolve(v) for k, v in files.items()})
    return conn


def _kafka_failure(conn: KafkaConnection, what: str, exc: BaseException) -> ConnectionFailed:
    return ConnectionFailed(
        f"{what}: the Kafka brokers {conn.bootstrap_servers} did not answer: {exc}",
        fix="check bootstrap_servers and the security settings of the connection, and that the "
        "brokers are up",
    )


def _consumer(conn: KafkaConnection, config: dict[str, Any], where: str) -> Any:
    kafka = _driver()
    try:
        return kafka.Consumer(config)
    except kafka.KafkaException as exc:
        raise ConfigError(
            f"{where}: the Kafka client rejected the connection's settings: {exc}",
            fix="check the settings: of the connection (librdkafka property names)",
        ) from None


# ---------------------------------------------------------------------- offsets
def watermarks(
    conn: KafkaConnection, topic: str, *, timeout_s: float = 10.0, where: str | None = None
) -> dict[int, tuple[int, int]]:
    """``{partition: (low, high)}``: the first offset kept and the offset after the last message.

    Raises:
        DefinitionError: the topic does not exist.
        ConnectionFailed: the brokers did not answer within ``timeout_s``.
    """
    kafka = _driver()
    what = where or f"topic {topic!r}"
    consumer = _consumer(conn, consumer_config(conn, group_id="headwater.offsets"), what)
    try:
        try:
            partitions = _partitions(consumer, conn, topic, timeout_s, what)
            marks = {}
            for partition in partitions:
                tp = kafka.TopicPartition(topic, partition)
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
                marks[partition] = (int(low), int(high))
            return marks
        except kafka.KafkaException as exc:
            raise _kafka_failure(conn, what, exc) from None
    finally:
        consumer.close()


def end_offsets(conn: KafkaConnection, topic: str, *, timeout_s: float = 10.0) -> dict[int, int]:
    """The high watermark of each partition of ``topic``: the offset its next message gets."""
    return {p: high for p, (_, high) in watermarks(conn, topic, timeout_s=timeout_s).items()}


def _partitions(
    consumer: Any, conn: KafkaConnection, topic: str, timeout_s: float, what: str
) -> list[int]:
    kafka = _driver()
    metadata = consumer.list_topics(topic, timeout=timeout_s)
    info = metadata.topics.get(topic)
    error = info.error if info is not None else None
    if info is None or (
        error is not None and error.code() == kafka.KafkaError.UNKNOWN_TOPIC_OR_PART
    ):
        raise DefinitionError(
            f"{what}: topic {topic!r} does not exist on {conn.bootstrap_servers}",
            fix="create the topic, or check topic= and the connection",
        )
    if error is not None:
        raise ConnectionFailed(
            f"{what}: cannot read the metadata of topic {topic!r}: {error.str()}",
            fix="check the connection's credentials and the topic's ACLs",
        )
    return sorted(info.partitions)


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
        kafka = _driver()
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
    kafka = _driver()
    marks = watermarks(conn, topic, where=where)
    ends = {p: high for p, (low, high) in marks.items() if high > low}
    pending = dict(ends)
    if not pending:
        return
    config = consumer_config(conn, group_id=group_id, enable_partition_eof=True)
    consumer = _consumer(conn, config, where)
    read = 0
    try:
        # From the first offset kept (a position out of range resets to the earliest).
        consumer.assign([kafka.TopicPartition(topic, p, marks[p][0]) for p in pending])
        progress = time.monotonic()
        while pending:
            try:
                messages = consumer.consume(num_messages=batch_messages, timeout=0.1)
            except kafka.KafkaException as exc:
                raise _kafka_failure(conn, where, exc) from None
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
                        raise _kafka_failure(conn, where, kafka.KafkaException(error))
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
        from headwater.connectors.kafka_decode import Decoder

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
        import pyarrow as pa

        from headwater.connectors.kafka_decode import Decoder

        schema = self.schema()
        decoder = Decoder(self.source, self.conn, schema=schema)
        rows = [0]
        failures: list[BaseException] = []
        self.dead = Counter()

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for messages in read_topic(self.conn, self.source.topic, where=self.where):
                    decoded = decoder.decode(messages)
                    self._count_dead(decoded.dead)
                    rows[0] += decoded.table.num_rows
                    yield from decoded.table.to_batches()
            except Exception as exc:
                failures.append(exc)
                raise
            self._report_dead()

        reader = pa.RecordBatchReader.from_batches(schema, batches())
        view = f"__hw_src_{self.source.name}"
        con.register(view, reader)
        return StreamScan(
            relation=view,
            rows_read=lambda: rows[0],
            failure=lambda: failures[-1] if failures else None,
        )

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
