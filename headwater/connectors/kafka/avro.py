"""Avro payloads of Kafka messages: plain records with a declared writer schema, or the
Confluent wire format (magic byte 0, a 4-byte big-endian schema id, the record) whose writer
schemas come from a schema registry, fetched once per id.

Records are read with fastavro; a message that is not framed, names an unknown schema id or
holds a record that does not fit its schema is a problem with the reason, never an error.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from headwater.connectors.kafka.schema import avro_to_arrow, avro_uuid_fields
from headwater.errors import ConnectionFailed, DefinitionError, require
from headwater.observability import redact

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.connectors.kafka.config import KafkaConnection
    from headwater.definitions.kafka import KafkaSource

Problem = tuple[str, str]
_HEADER = 5


class _Writer:
    """One writer schema: as fastavro parsed it, as JSON, and its top-level uuid fields."""

    def __init__(self, raw: Any, parsed: Any) -> None:
        self.raw = raw
        self.parsed = parsed
        self.uuids = avro_uuid_fields(raw) if isinstance(raw, dict) else []


class AvroFormat:
    """Decodes the Avro messages of one source.

    Raises:
        DefinitionError: the declared schema is not valid Avro, or there is neither a declared
            schema nor a ``schema_registry_url`` on the connection.
    """

    def __init__(self, source: KafkaSource, conn: KafkaConnection, where: str) -> None:
        self.fastavro: Any = require("fastavro", "kafka")
        self.where = where
        self.conn = conn
        self.inline: _Writer | None = None
        self._by_id: dict[int, _Writer] = {}
        self._not_avro: dict[int, str] = {}
        self._client: Any = None
        self._first: _Writer | None = None
        if source.schema:
            self.inline = self._parse(source.schema, "the declared schema")
        elif conn.schema_registry_url is None:
            raise DefinitionError(
                f"{where}: an Avro source needs the writer schema (schema=) or a schema "
                f"registry on its connection {source.connection!r}",
                fix="declare schema={...} for plain Avro, or set schema_registry_url on the "
                "connection for the Confluent wire format",
            )

    def _parse(self, raw: Any, what: str) -> _Writer:
        try:
            return _Writer(raw, self.fastavro.parse_schema(raw))
        except Exception as exc:
            raise DefinitionError(
                f"{self.where}: {what} is not a valid Avro schema: {exc}",
                fix="give an Avro record schema",
            ) from None

    def declared_payload(self) -> pa.Schema | None:
        """The Arrow columns of the declared writer schema (``None`` with a registry)."""
        return avro_to_arrow(self.inline.raw, where=self.where) if self.inline else None

    def first_payload(self) -> pa.Schema | None:
        """The Arrow columns of the first writer schema met (registry), if any yet."""
        return avro_to_arrow(self._first.raw, where=self.where) if self._first else None

    def decode(self, values: list[bytes]) -> tuple[list[Any], dict[int, Problem]]:
        """Records (``None`` where a value failed) and the problems, by index into ``values``."""
        reader = self.fastavro.schemaless_reader
        records: list[Any] = []
        problems: dict[int, Problem] = {}
        unknown: set[int] = set()
        for index, value in enumerate(values):
            writer, body, problem = self._frame(value, unknown)
            if problem is not None or writer is None:
                records.append(None)
                problems[index] = problem or ("decode", "no writer schema")
                continue
            stream = io.BytesIO(body)
            try:
                record = reader(stream, writer.parsed)
            except Exception as exc:
                records.append(None)
                problems[index] = (
                    "schema",
                    f"the record does not fit {self._what(value)}: {type(exc).__name__}: {exc}",
                )
                continue
            left = len(body) - stream.tell()
            if left:
                records.append(None)
                problems[index] = (
                    "schema",
                    f"the record does not fit {self._what(value)}: {left} bytes left after it",
                )
                continue
            for name in writer.uuids:
                if record.get(name) is not None:
                    record[name] = str(record[name])
            if self._first is None:
                self._first = writer
            records.append(record)
        return records, problems

    def _what(self, value: bytes) -> str:
        if self.inline is not None:
            return "the declared schema"
        return f"schema id {int.from_bytes(value[1:_HEADER], 'big')}"

    def _frame(
        self, value: bytes, unknown: set[int]
    ) -> tuple[_Writer | None, bytes, Problem | None]:
        if self.inline is not None:
            return self.inline, value, None
        if len(value) < _HEADER:
            reason = (
                f"not in the Confluent wire format: {len(value)} bytes, less than the 5-byte header"
            )
            return None, b"", ("decode", reason)
        if value[0] != 0:
            reason = (
                f"not in the Confluent wire format: the first byte is {value[0]:#04x}, not the "
                "magic byte 0x00"
            )
            return None, b"", ("decode", reason)
        schema_id = int.from_bytes(value[1:_HEADER], "big")
        writer = self._by_id.get(schema_id)
        if writer is None and schema_id not in unknown:
            writer = self._fetch(schema_id)
            if writer is None:
                unknown.add(schema_id)
        if writer is None and schema_id in self._not_avro:
            kind = self._not_avro[schema_id]
            return None, b"", ("schema", f"schema id {schema_id} is a {kind} schema, not Avro")
        if writer is None:
            reason = f"unknown schema id {schema_id}: not in the schema registry"
            return None, b"", ("schema", reason)
        return writer, value[_HEADER:], None

    def _fetch(self, schema_id: int) -> _Writer | None:
        """The writer schema ``schema_id`` from the registry (``None`` when it has none)."""
        import json

        registry = require("confluent_kafka.schema_registry", "kafka")
        url = self.conn.schema_registry_url
        assert url is not None
        if self._client is None:
            settings: dict[str, Any] = {"url": url.get_secret_value()}
            if self.conn.ssl_ca_location:
                settings["ssl.ca.location"] = self.conn.ssl_ca_location
            self._client = registry.SchemaRegistryClient(settings)  # type: ignore[attr-defined]
        try:
            schema = self._client.get_schema(schema_id)
        except registry.SchemaRegistryError as exc:  # type: ignore[attr-defined]
            if exc.http_status_code == 404:
                return None
            raise self._unreachable(exc) from None
        except Exception as exc:
            raise self._unreachable(exc) from None
        kind = (schema.schema_type or "AVRO").upper()
        if kind != "AVRO":
            self._not_avro[schema_id] = kind
            return None
        writer = self._parse(json.loads(schema.schema_str), f"schema id {schema_id}")
        self._by_id[schema_id] = writer
        return writer

    def _unreachable(self, exc: BaseException) -> ConnectionFailed:
        url = self.conn.schema_registry_url
        shown = redact(url.get_secret_value()) if url else "?"
        return ConnectionFailed(
            f"{self.where}: the schema registry {shown} did not answer: {redact(str(exc))}",
            fix="check schema_registry_url on the connection and that the registry is up",
        )
