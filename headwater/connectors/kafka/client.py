"""Kafka client settings, connections and offsets.

The streaming engine consumes topics through consumer groups (``headwater stream``); this module
gives it and the batch reader the client settings (:func:`consumer_config`,
:func:`producer_config`), the connection of a source (:func:`kafka_connection`) and a topic's
offsets (:func:`watermarks`, :func:`end_offsets`).

confluent-kafka is imported inside functions only; without it a clear error names the extra:
``pip install 'headwater[kafka]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.errors import ConfigError, ConnectionFailed, DefinitionError, require
from headwater.observability import get_logger

if TYPE_CHECKING:
    from headwater.config import ProjectConfig
    from headwater.connectors.kafka.config import KafkaConnection


log = get_logger("headwater.connectors.kafka")
_client_log = get_logger("headwater.kafka.client")
"""Where the Kafka client's own messages go (through headwater's redacting handlers)."""
_TLS_FILES = ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location")


def driver() -> Any:
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
    from headwater.connectors.kafka.config import KafkaConnection

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


def kafka_failure(conn: KafkaConnection, what: str, exc: BaseException) -> ConnectionFailed:
    return ConnectionFailed(
        f"{what}: the Kafka brokers {conn.bootstrap_servers} did not answer: {exc}",
        fix="check bootstrap_servers and the security settings of the connection, and that the "
        "brokers are up",
    )


def open_consumer(conn: KafkaConnection, config: dict[str, Any], where: str) -> Any:
    kafka = driver()
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
    kafka = driver()
    what = where or f"topic {topic!r}"
    consumer = open_consumer(conn, consumer_config(conn, group_id="headwater.offsets"), what)
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
            raise kafka_failure(conn, what, exc) from None
    finally:
        consumer.close()


def end_offsets(conn: KafkaConnection, topic: str, *, timeout_s: float = 10.0) -> dict[int, int]:
    """The high watermark of each partition of ``topic``: the offset its next message gets."""
    return {p: high for p, (_, high) in watermarks(conn, topic, timeout_s=timeout_s).items()}


def _partitions(
    consumer: Any, conn: KafkaConnection, topic: str, timeout_s: float, what: str
) -> list[int]:
    kafka = driver()
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
