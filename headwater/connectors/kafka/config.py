"""``connections.<name>`` of ``type: kafka``: an Apache Kafka cluster."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from headwater.config.models import ConnectionConfig


class KafkaConnection(ConnectionConfig):
    """An Apache Kafka cluster (Kafka sources, dead-letter topics, the streaming engine)."""

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: str
    """``host:port[,host:port...]``: the brokers a client contacts first."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How clients talk to the brokers: in clear, over TLS, with SASL, or SASL over TLS."""
    sasl_mechanism: str | None = None
    """SASL mechanism (``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``, ``OAUTHBEARER``, ...)."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: SecretStr | None = None
    """SASL password (take it from the environment: ``${KAFKA_PASSWORD}``)."""
    ssl_ca_location: str | None = None
    """PEM file of the certificate authorities that signed the brokers' certificates (relative
    paths are read from the project folder); also used to check the schema registry."""
    ssl_certificate_location: str | None = None
    """PEM file of this client's certificate, for brokers that require client authentication."""
    ssl_key_location: str | None = None
    """PEM file of this client's private key."""
    ssl_key_password: SecretStr | None = None
    """Password of the private key, if it is encrypted."""
    schema_registry_url: SecretStr | None = None
    """Confluent-compatible schema registry that resolves the schema ids of Avro messages in
    the Confluent wire format, e.g. ``https://user:password@registry:8081``."""
    settings: dict[str, SecretStr] = Field(default_factory=dict)
    """Any librdkafka setting (``client.id``, ``session.timeout.ms``, ...), passed through and
    taking precedence over headwater's defaults; kept secret because some hold credentials."""

    @field_validator("settings", mode="before")
    @classmethod
    def _settings_as_text(cls, value: Any) -> Any:
        # YAML reads ``session.timeout.ms: 6000`` as a number; librdkafka takes text.
        if not isinstance(value, dict):
            return value
        return {key: _setting_text(item) for key, item in value.items()}


def _setting_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value
