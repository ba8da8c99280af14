"""Kafka messages to Arrow rows: JSON decoded in bulk, Avro, raw bytes; dead letters for the rest.

Every batch of messages gives a table of good rows, in message order, and a list of
:class:`~headwater.connectors.kafka.letters.DeadLetter` saying what was wrong with each other
message.
Columns: the payload's, the ``key_field`` (the message key as text) when set, then
``kafka_partition``, ``kafka_offset`` and ``kafka_timestamp``.

JSON is parsed by Arrow's reader, all messages of a batch at once, with an explicit schema
(fields not in it are ignored). Only when that fails are the messages checked one by one, to
name what is wrong with the bad ones; the rest are then parsed in bulk again. Without a declared
schema, the first batch's types are inferred and kept for every later batch (text is never
turned into timestamps by inference). Event times and declared timestamp columns in text are
read as DuckDB reads ``CAST(text AS TIMESTAMPTZ)``, as the batch engine does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from headwater.config.machine import usable_cpus
from headwater.connectors.kafka.avro import AvroFormat
from headwater.connectors.kafka.letters import DeadLetter
from headwater.connectors.kafka.schema import (
    JsonCheck,
    declared_schema,
    json_checker,
    json_kind,
)
from headwater.definitions.kafka import (
    KAFKA_OFFSET,
    KAFKA_PARTITION,
    KAFKA_TIMESTAMP,
    METADATA_COLUMNS,
    RAW_VALUE,
)
from headwater.errors import DefinitionError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.connectors.kafka.config import KafkaConnection
    from headwater.definitions.kafka import KafkaSource

_THREADS = usable_cpus() > 1
"""Parse blocks in parallel only where the process may use more than one CPU."""

Problem = tuple[str, str]
"""``(check, reason)`` of a message that did not become a row."""


@dataclass
class Decoded:
    """One decoded batch.

    Attributes:
        table: the good rows, in message order, with the decoder's output schema.
        dead: every other message, with its reason.
    """

    table: pa.Table
    dead: list[DeadLetter] = field(default_factory=list)


def metadata_fields() -> list[pa.Field]:
    """The columns added to every payload: partition, offset and message timestamp."""
    import pyarrow as pa

    return [
        pa.field(KAFKA_PARTITION, pa.int32()),
        pa.field(KAFKA_OFFSET, pa.int64()),
        pa.field(KAFKA_TIMESTAMP, pa.timestamp("ms", tz="UTC")),
    ]


class Decoder:
    """Decodes the messages of one :class:`~headwater.definitions.kafka.KafkaSource`.

    Args:
        source: the source (format, declared schema, key and event-time fields, size limit).
        conn: its connection (the schema registry of Avro messages in the Confluent format).
        schema: the output schema to keep (for example :meth:`KafkaConnector.schema`'s, so
            that a stream and a batch read agree); by default the declared one, else inferred
            from the first batch.
        message_time: fill ``kafka_timestamp`` (when nothing reads it, it is left null and the
            messages' timestamps are not read).

    Raises:
        DefinitionError: the declared schema names an unknown type, a column clashes with one
            headwater adds, or the event time has a type that is not a time.
    """

    def __init__(
        self,
        source: KafkaSource,
        conn: KafkaConnection,
        schema: pa.Schema | None = None,
        *,
        message_time: bool = True,
    ) -> None:
        import pyarrow as pa

        self.source = source
        self.message_time = message_time
        self.conn = conn
        self.where = f"kafka source {source.name!r}"
        self._payload: pa.Schema | None = None
        self._read: pa.Schema | None = None
        self._schema: pa.Schema | None = None
        self._checks: list[tuple[str, JsonCheck]] = []
        self._times = _TimeParser()
        self._avro: AvroFormat | None = None
        given = _payload_of(schema, source) if schema is not None else None
        if source.format == "raw":
            self._set_payload(pa.schema([pa.field(RAW_VALUE, pa.binary())]))
        elif source.format == "avro":
            self._avro = AvroFormat(source, conn, self.where)
            payload = given if given is not None else self._avro.declared_payload()
            if payload is not None:
                self._set_payload(payload)
        elif given is not None:
            self._set_payload(given)
        elif source.schema:
            self._set_payload(declared_schema(source.schema, where=self.where))

    @property
    def schema(self) -> pa.Schema | None:
        """The output schema (``None`` until the first batch when it is inferred)."""
        return self._schema

    # ------------------------------------------------------------------ schema
    def _set_payload(self, payload: pa.Schema) -> None:
        import pyarrow as pa

        reserved = set(METADATA_COLUMNS) | {self.source.key_field or KAFKA_PARTITION}
        clash = [name for name in payload.names if name in reserved]
        if clash:
            raise DefinitionError(
                f"{self.where}: the payload has a field {clash[0]!r}, a name of a column "
                "headwater adds",
                fix="choose another key_field= (or rename the payload field)",
            )
        self._check_event_time(payload)
        extra = [pa.field(self.source.key_field, pa.string())] if self.source.key_field else []
        self._payload = payload
        self._read = pa.schema([pa.field(f.name, _read_type(f.type)) for f in payload])
        # Timestamps come as ISO text or as epoch milliseconds: the reader is asked for the
        # form that worked last, then the other.
        self._read_alt: pa.Schema | None = None
        if any(pa.types.is_timestamp(f.type) for f in payload):
            self._read_alt = pa.schema(
                [
                    pa.field(f.name, pa.int64() if pa.types.is_timestamp(f.type) else t.type)
                    for f, t in zip(payload, self._read, strict=True)
                ]
            )
        self._checks = [(f.name, json_checker(f.type)) for f in self._read]
        self._schema = pa.schema(list(payload) + extra + metadata_fields())

    def _check_event_time(self, payload: pa.Schema) -> None:
        import pyarrow as pa

        name = self.source.timestamp_field
        if name == KAFKA_TIMESTAMP:
            return
        if name not in payload.names:
            raise DefinitionError(
                f"{self.where}: timestamp_field {name!r} is not a payload column (columns: "
                f"{', '.join(payload.names)})",
                fix="name a payload field, or 'kafka_timestamp' for the message timestamp",
            )
        arrow_type = payload.field(name).type
        if not (
            pa.types.is_integer(arrow_type)
            or pa.types.is_string(arrow_type)
            or pa.types.is_large_string(arrow_type)
            or pa.types.is_timestamp(arrow_type)
        ):
            raise DefinitionError(
                f"{self.where}: timestamp_field {name!r} is {arrow_type}, which is not a time",
                fix="declare it int64 (epoch milliseconds), string (ISO-8601) or a timestamp",
            )

    # ------------------------------------------------------------------ decoding
    def decode(self, messages: Sequence[Any]) -> Decoded:
        """Decode ``messages`` (``confluent_kafka.Message`` without an error: the consumer's
        errors are the caller's to handle)."""
        import pyarrow as pa

        # The hot path: one C call per message and field, mapped over the messages (their
        # methods, taken once from their type); the checks on sizes and missing values are
        # vectorised and loop in Python only over the bad ones.
        kept = list(messages)
        kind = type(kept[0]) if kept else None
        values: list[bytes] = list(map(kind.value, kept)) if kind else []
        joined = _joined(values) if values else None
        # The joined length bounds every value's: only when it is over the limit (or a value
        # is missing) are the values looked at one by one.
        fits = joined is not None and len(joined) - len(values) + 1 <= self.source.max_message_bytes
        dead: list[tuple[int, DeadLetter]] = []
        bad = {} if fits else self._unreadable(values)
        positions: list[int] | range = range(len(kept))
        if bad:
            for index, (check, reason) in sorted(bad.items()):
                dead.append((index, DeadLetter.of(kept[index], check, reason)))
            positions = [i for i in range(len(kept)) if i not in bad]
            kept = [kept[i] for i in positions]
            values = [values[i] for i in positions]
            joined = None  # the values changed
        keys = list(map(kind.key, kept)) if kind and self.source.key_field else []
        partitions = list(map(kind.partition, kept)) if kind else []
        offsets = list(map(kind.offset, kept)) if kind else []
        # -1 when a message has none; not read at all when nothing downstream uses the column.
        stamps = [m.timestamp()[1] for m in kept] if self.message_time else None

        payload, problems = self._decode_payload(values, joined)
        for index, (check, reason) in problems.items():
            dead.append((positions[index], DeadLetter.of(kept[index], check, reason)))
        if self._schema is None or payload is None:
            dead.sort(key=lambda item: item[0])
            return Decoded(pa.table({}), [letter for _, letter in dead])

        columns: list[Any] = list(payload.columns)
        if self.source.key_field:
            columns.append(pa.array(keys, pa.binary()))
        columns += [
            pa.array(partitions, pa.int32()),
            pa.array(offsets, pa.int64()),
            _message_times(stamps, len(kept)),
        ]
        if problems:
            rows = pa.array([i for i in range(len(kept)) if i not in problems], pa.int64())
            columns = columns[: payload.num_columns] + [
                c.take(rows) for c in columns[payload.num_columns :]
            ]
            kept = [kept[i] for i in rows.to_pylist()]
            positions = [positions[i] for i in rows.to_pylist()]
        key_index = payload.num_columns if self.source.key_field else None
        row_problems: dict[int, Problem] = {}
        if key_index is not None:
            columns[key_index] = self._keys_as_text(columns[key_index], row_problems)
        table = pa.Table.from_arrays(columns, schema=self._schema)
        row_problems.update(self._event_time_problems(table, row_problems))
        if row_problems:
            keep = pa.array([i not in row_problems for i in range(table.num_rows)])
            table = table.filter(keep)
            for index, (check, reason) in row_problems.items():
                dead.append((positions[index], DeadLetter.of(kept[index], check, reason)))
        dead.sort(key=lambda item: item[0])
        return Decoded(table, [letter for _, letter in dead])

    def _unreadable(self, values: Sequence[bytes | None]) -> dict[int, Problem]:
        """Messages with no value (tombstones; fine for the raw format) or a value over the
        size limit, by index."""
        if not values:
            return {}
        limit = self.source.max_message_bytes
        raw = self.source.format == "raw"
        if None not in values and max(map(len, cast("list[bytes]", values))) <= limit:
            return {}
        found: dict[int, Problem] = {}
        for index, value in enumerate(values):
            if value is None:
                if not raw:
                    found[index] = ("decode", "the message has no value (a tombstone)")
            elif len(value) > limit:
                found[index] = (
                    "oversized",
                    f"the value is {len(value)} bytes, more than max_message_bytes={limit}",
                )
        return found

    def _decode_payload(
        self, values: list[bytes], joined: bytes | None = None
    ) -> tuple[pa.Table | None, dict[int, Problem]]:
        """The payload table of the good values (in order) and the problems of the others, by
        index into ``values`` (``joined``: the values one per line, when already made)."""
        import pyarrow as pa

        if self.source.format == "raw":
            return pa.table([pa.array(values, pa.binary())], schema=self._payload), {}
        if self._avro is not None:
            records, problems = self._avro.decode(values)
            if self._payload is None:
                first = self._avro.first_payload()
                if first is None:
                    return None, problems
                self._set_payload(first)
            assert self._payload is not None
            table, more = _records_table(records, self._payload)
            return table, {**problems, **more}
        if self._read is None:
            self._infer(values)
            if self._read is None:
                return None, {i: p for i, v in enumerate(values) if (p := _syntax(v))}
        return self._json(values, joined)

    # ------------------------------------------------------------------ JSON
    def _json(
        self, values: list[bytes], joined: bytes | None = None
    ) -> tuple[pa.Table, dict[int, Problem]]:
        assert self._read is not None
        table, _ = _bulk(values, self._read, self._block_size(), joined)
        if table is None and self._read_alt is not None:
            table, _ = _bulk(values, self._read_alt, self._block_size())
            if table is not None:  # epoch milliseconds (or ISO text) from now on
                self._read, self._read_alt = self._read_alt, self._read
                self._checks = [(f.name, json_checker(f.type)) for f in self._read]
        problems: dict[int, Problem] = {}
        good = list(range(len(values)))
        if table is None:
            for index, value in enumerate(values):
                problem = self._problem(value)
                if problem:
                    problems[index] = problem
            good = [i for i in good if i not in problems]
            table, _ = _bulk([values[i] for i in good], self._read, self._block_size())
            if table is None:  # the checks above and Arrow's reader disagree: ask the reader
                tables, more = self._isolate(values, good)
                problems.update(more)
                good = [i for i in good if i not in more]
                table = _concat(tables, self._read)
        return self._convert_times(table, good, problems), problems

    def _problem(self, value: bytes) -> Problem | None:
        """Why one message does not decode or fit the schema (``None`` when it does)."""
        document, problem = _parse_one(value)
        if problem is not None:
            return problem
        for name, check in self._checks:
            reason = check(document.get(name), name)
            if reason:
                return "schema", reason
        return None

    def _isolate(
        self, values: list[bytes], indices: list[int]
    ) -> tuple[list[pa.Table], dict[int, Problem]]:
        """Bisect ``indices`` into tables Arrow reads and the single messages it rejects."""
        assert self._read is not None
        table, error = _bulk([values[i] for i in indices], self._read, self._block_size())
        if table is not None:
            return [table], {}
        if len(indices) == 1:
            return [], {indices[0]: ("schema", f"the payload does not fit the schema: {error}")}
        middle = len(indices) // 2
        left, left_problems = self._isolate(values, indices[:middle])
        right, right_problems = self._isolate(values, indices[middle:])
        return left + right, {**left_problems, **right_problems}

    def _block_size(self) -> int:
        return min(max(1 << 22, self.source.max_message_bytes + 2), (1 << 31) - 1)

    def _infer(self, values: list[bytes]) -> None:
        """Fix the payload schema from the first batch's types (text stays text)."""
        table, _ = _bulk(values, None, self._block_size())
        if table is None:
            objects = [v for v in values if _syntax(v) is None]
            table, _ = _bulk(objects, None, self._block_size())
            if table is None and objects:  # types that disagree: the first object decides
                table, _ = _bulk(objects[:1], None, self._block_size())
        if table is None:
            return
        self._set_payload(_inferred(table.schema, self.source.timestamp_field))

    def _convert_times(
        self, table: pa.Table, good: list[int], problems: dict[int, Problem]
    ) -> pa.Table:
        """Read the text of declared timestamp and date columns; rows that do not read are
        dead letters (``timestamp`` for the event time, ``schema`` for other columns)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        assert self._payload is not None
        bad_rows: dict[int, Problem] = {}
        columns = []
        for spec, column in zip(self._payload, table.columns, strict=True):
            if column.type == spec.type:
                columns.append(column)
                continue
            if pa.types.is_integer(column.type) and pa.types.is_timestamp(spec.type):
                millis = column.combine_chunks().cast(pa.timestamp("ms", tz=spec.type.tz))
                columns.append(millis.cast(spec.type))
                continue
            text = column.combine_chunks()
            parsed = self._times.to_type(text, spec.type)
            failed = pc.and_(parsed.is_null(), text.is_valid())
            if pc.any(failed).as_py():
                event_time = spec.name == self.source.timestamp_field
                for row in pc.indices_nonzero(failed).to_pylist():
                    shown = text[row].as_py()
                    if event_time:
                        what = f"field {spec.name!r} (the event time)"
                        problem = ("timestamp", f"{what}: cannot read {shown!r} as a time")
                    else:
                        what = f"field {spec.name!r}"
                        problem = ("schema", f"{what}: cannot read {shown!r} as {spec.type}")
                    bad_rows.setdefault(row, problem)
            columns.append(parsed)
        converted = pa.Table.from_arrays(columns, schema=self._payload)
        if not bad_rows:
            return converted
        for row, problem in bad_rows.items():
            problems[good[row]] = problem
        keep = pa.array([row not in bad_rows for row in range(converted.num_rows)])
        good[:] = [index for row, index in enumerate(good) if row not in bad_rows]
        return converted.filter(keep)

    # ------------------------------------------------------------------ row checks
    def _keys_as_text(self, keys: pa.Array, problems: dict[int, Problem]) -> pa.Array:
        import pyarrow as pa

        try:
            return keys.cast(pa.string())
        except pa.ArrowInvalid:
            pass
        text: list[str | None] = []
        for row, key in enumerate(keys.to_pylist()):
            try:
                text.append(None if key is None else key.decode("utf-8"))
            except UnicodeDecodeError as exc:
                reason = f"the message key is not UTF-8 text (byte {exc.start}): {exc.reason}"
                problems[row] = ("decode", reason)
                text.append(None)
        return pa.array(text, pa.string())

    def _event_time_problems(
        self, table: pa.Table, known: dict[int, Problem]
    ) -> dict[int, Problem]:
        import pyarrow as pa
        import pyarrow.compute as pc

        name = self.source.timestamp_field
        column = table.column(name).combine_chunks()
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            bad = self._times.to_type(column, pa.timestamp("us", tz="UTC")).is_null()
        else:
            bad = column.is_null()
        if not pc.any(bad).as_py():
            return {}
        problems: dict[int, Problem] = {}
        for row in pc.indices_nonzero(bad).to_pylist():
            if row in known:
                continue
            value = column[row].as_py()
            if name == KAFKA_TIMESTAMP:
                reason = "the message has no timestamp (the event time is kafka_timestamp)"
            elif value is None:
                reason = f"field {name!r} (the event time) is missing or null"
            else:
                reason = f"field {name!r} (the event time): cannot read {value!r} as a time"
            problems[row] = ("timestamp", reason)
        return problems


# ---------------------------------------------------------------------- helpers
def _payload_of(schema: pa.Schema, source: KafkaSource) -> pa.Schema:
    """The payload part of an output schema (the key and metadata columns removed)."""
    import pyarrow as pa

    added = set(METADATA_COLUMNS) | ({source.key_field} if source.key_field else set())
    return pa.schema([f for f in schema if f.name not in added])


def _read_type(arrow_type: pa.DataType) -> pa.DataType:
    """What Arrow's JSON reader is asked for: timestamps and dates as text (read afterwards)."""
    import pyarrow as pa

    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return pa.string()
    return arrow_type


def _inferred(schema: pa.Schema, event_time: str) -> pa.Schema:
    """The kept schema of an inferred batch: times stay text, all-null fields are left out
    (the event time is kept, as text)."""
    import pyarrow as pa

    fields = []
    for spec in schema:
        arrow_type = _textual(spec.type)
        if arrow_type is None:
            if spec.name != event_time:
                continue
            arrow_type = pa.string()
        fields.append(pa.field(spec.name, arrow_type))
    if event_time != KAFKA_TIMESTAMP and event_time not in schema.names:
        fields.append(pa.field(event_time, pa.string()))
    return pa.schema(fields)


def _textual(arrow_type: pa.DataType) -> pa.DataType | None:
    import pyarrow as pa

    if pa.types.is_null(arrow_type):
        return None
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return pa.string()
    if pa.types.is_list(arrow_type):
        return pa.list_(_textual(arrow_type.value_type) or pa.string())
    if pa.types.is_struct(arrow_type):
        return pa.struct([pa.field(f.name, _textual(f.type) or pa.string()) for f in arrow_type])
    return arrow_type


def _message_times(stamps: list[int] | None, rows: int) -> pa.Array:
    """Kafka message timestamps (epoch ms; -1 when a message has none) as a timestamp
    column, null where there is none (everywhere when they were not read)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if stamps is None:
        return pa.nulls(rows, pa.timestamp("ms", tz="UTC"))
    array = pa.array(stamps, pa.int64())
    if len(array) and pc.min(array).as_py() < 0:
        array = pc.if_else(pc.less(array, 0), pa.scalar(None, pa.int64()), array)
    return array.cast(pa.timestamp("ms", tz="UTC"))


def _parse_one(value: bytes) -> tuple[Any, Problem | None]:
    """One message as a JSON object, or why it is not one."""
    try:
        document = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, ("decode", f"invalid UTF-8 at byte {exc.start}: {exc.reason}")
    except json.JSONDecodeError as exc:
        at = len(exc.doc[: exc.pos].encode("utf-8"))
        return None, ("decode", f"invalid JSON at byte {at}: {exc.msg}")
    if type(document) is not dict:
        return None, ("decode", f"expected a JSON object, got {json_kind(document)}")
    return document, None


def _syntax(value: bytes) -> Problem | None:
    """Why ``value`` is not one JSON object (``None`` when it is)."""
    return _parse_one(value)[1]


def _joined(values: list[bytes]) -> bytes | None:
    """The values one per line (``None`` when one is missing)."""
    try:
        return b"\n".join(values)
    except TypeError:
        return None


def _bulk(
    values: list[bytes], schema: pa.Schema | None, block_size: int, joined: bytes | None = None
) -> tuple[pa.Table | None, str]:
    """Parse ``values`` (one JSON object each; ``joined``: them one per line, when already
    made) at once; ``(None, error)`` when Arrow refuses them or they do not hold exactly one
    object each."""
    import pyarrow as pa
    import pyarrow.json as pj

    if not values:
        return (schema.empty_table() if schema is not None else None), ""
    data = b"\n".join(values) if joined is None else joined
    if data.count(b"\n") != len(values) - 1 or b"\r" in data:
        # Pretty-printed messages: outside strings a line break is only white space.
        data = b"\n".join(v.replace(b"\r", b" ").replace(b"\n", b" ") for v in values)
    parse = pj.ParseOptions(
        explicit_schema=schema,
        unexpected_field_behavior="ignore" if schema is not None else "infer",
    )
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(block_size=block_size, use_threads=_THREADS),
            parse_options=parse,
        )
    except (pa.ArrowException, ValueError) as exc:
        return None, str(exc)
    if table.num_rows != len(values):
        return None, f"{len(values)} messages hold {table.num_rows} JSON objects"
    return table, ""


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    return pa.concat_tables(tables) if tables else schema.empty_table()


def _records_table(records: list[Any], payload: pa.Schema) -> tuple[pa.Table, dict[int, Problem]]:
    """Avro records (``None`` for the ones that failed) as a table of ``payload``; records whose
    values do not fit a column are problems."""
    import pyarrow as pa

    present = [(i, r) for i, r in enumerate(records) if r is not None]
    try:
        return pa.Table.from_pylist([r for _, r in present], schema=payload), {}
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        pass
    good: list[Any] = []
    problems: dict[int, Problem] = {}
    for index, record in present:
        problem = _record_problem(record, payload)
        if problem:
            problems[index] = ("schema", problem)
        else:
            good.append(record)
    return pa.Table.from_pylist(good, schema=payload), problems


def _record_problem(record: dict[str, Any], payload: pa.Schema) -> str | None:
    import pyarrow as pa

    for spec in payload:
        value = record.get(spec.name)
        try:
            pa.array([value], spec.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            return f"field {spec.name!r}: expected {spec.type}, got {type(value).__name__} {shown}"
    return None


class _TimeParser:
    """Reads text as times the way the batch engine does (DuckDB ``TRY_CAST``, UTC session)."""

    def __init__(self) -> None:
        self._con: duckdb.DuckDBPyConnection | None = None

    def to_type(self, text: pa.Array, arrow_type: pa.DataType) -> pa.Array:
        """``text`` as ``arrow_type`` (a timestamp or a date); null where it does not read.
        Finer times are floored to the type's unit."""
        import duckdb
        import pyarrow as pa
        import pyarrow.compute as pc

        if self._con is None:
            self._con = duckdb.connect()
            self._con.execute("SET TimeZone = 'UTC'")
            self._con.execute("SET threads = 1")
        sql_type = "DATE" if pa.types.is_date(arrow_type) else "TIMESTAMPTZ"
        self._con.register("__hw_text", pa.table({"v": text}))
        try:
            result = self._con.sql(f"SELECT TRY_CAST(v AS {sql_type}) AS v FROM __hw_text")
            parsed = result.to_arrow_table().column(0).combine_chunks()
        finally:
            self._con.unregister("__hw_text")
        if pa.types.is_date(arrow_type):
            return parsed.cast(arrow_type)
        unit = {"s": "second", "ms": "millisecond"}.get(arrow_type.unit)
        if unit:
            parsed = pc.floor_temporal(parsed, unit=unit)
        return parsed.cast(pa.timestamp(arrow_type.unit, tz=arrow_type.tz))
