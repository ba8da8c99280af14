"""Turn Arrow rows into what the online stores keep, and back.

* **Entity keys**: the join-key tuple as compact JSON (``[42,"eu"]``), always starting with ``[``.
* **Payloads**: ``<schema id><JSON object>``. Feature columns are first cast by Arrow to a
  JSON-safe *wire type* (temporal types to integers in their unit, decimals to strings), so
  decoding is the reverse cast and yields exactly what ``Table.to_pylist()`` gives. Bytes travel
  as base64; nulls are omitted. The schema id hashes the features' Arrow schema; stores keep each
  id's schema, so rows written before a feature changed type still decode with their own types.
* :func:`prepare_rows` reduces a batch to the latest row per entity (greatest
  ``event_timestamp``, then ``created_timestamp``, nulls lowest, later rows win full ties).
"""

from __future__ import annotations

import base64
import datetime as _dt
import decimal
import functools
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.errors import HeadwaterError
from headwater.stores.online.base import OnlineRow

if TYPE_CHECKING:
    from headwater.definitions import FeatureView

SCHEMA_ID_LEN = 12
_POS = "__headwater_pos"

Stored = tuple[int, int | None, bytes]
"""What a store keeps per entity: event ms, created ms (or None), payload."""


@dataclass(frozen=True)
class EncodedRows:
    """One batch reduced to the latest row per entity and encoded for storage."""

    keys: list[str]
    event_ts_ms: list[int]
    created_ts_ms: list[int | None]
    payloads: list[bytes]
    schema_id: str
    schema_bytes: bytes


# ------------------------------------------------------------------ keys
def _key_default(value: Any) -> Any:
    if isinstance(value, _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot use {type(value).__name__} value {value!r} in an entity key")


_KEY_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_key_default)


def encode_key(values: Sequence[Any]) -> str:
    """The storage key of one join-key tuple."""
    return _KEY_ENCODER.encode(list(values))


def encode_keys(table: pa.Table, join_keys: list[str]) -> list[str]:
    """:func:`encode_key` of every row; vectorised for integer and plain string columns."""
    import pyarrow.compute as pc

    def lit(text: str) -> pa.Scalar:
        return pa.scalar(text, pa.large_string())

    parts: list[Any] = []
    for name in join_keys:
        column, kind = table.column(name), table.column(name).type
        if pa.types.is_integer(kind):
            text = pc.cast(column, pa.large_string())
        elif (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and not pc.any(
            pc.match_substring_regex(column, r"[\x00-\x1f]")
        ).as_py():
            # Exactly what JSON does to strings without control characters.
            escaped = pc.replace_substring(
                pc.replace_substring(pc.cast(column, pa.large_string()), "\\", "\\\\"), '"', '\\"'
            )
            text = pc.binary_join_element_wise(lit('"'), escaped, lit('"'), lit(""))
        else:
            values = zip(*(table.column(k).to_pylist() for k in join_keys), strict=True)
            return [encode_key(v) for v in values]
        parts.extend([lit(","), pc.fill_null(text, lit("null"))])
    if not table.num_rows:
        return []
    joined = pc.binary_join_element_wise(lit("["), *parts[1:], lit("]"), lit(""))
    return list(joined.to_pylist())


# ------------------------------------------------------------------ types and schemas
def _wire_type(t: pa.DataType) -> pa.DataType:
    """The JSON-safe type ``t`` is cast to before encoding (and cast back from)."""
    types = pa.types
    if types.is_timestamp(t) or types.is_date64(t) or types.is_time64(t) or types.is_duration(t):
        return pa.int64()
    if types.is_date32(t) or types.is_time32(t):
        return pa.int32()
    if types.is_decimal(t):
        return pa.string()
    if types.is_float16(t):
        return pa.float32()
    if types.is_dictionary(t):
        return _wire_type(t.value_type)
    if types.is_map(t):
        return pa.map_(_wire_type(t.key_type), _wire_type(t.item_type))
    if types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(_wire_type(t.value_type)), t.list_size)
    if types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_wire_type(t.value_type)))
    if types.is_list(t):
        return pa.list_(t.value_field.with_type(_wire_type(t.value_type)))
    if types.is_struct(t):
        return pa.struct([f.with_type(_wire_type(f.type)) for f in t])
    return t


def _is_binary(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
    )


def _is_list(t: pa.DataType) -> bool:
    types = pa.types
    return bool(types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t))


def _needs_restore(t: pa.DataType) -> bool:
    """True when JSON values of wire type ``t`` need Python fix-ups (bytes, map pairs)."""
    if _is_binary(t) or pa.types.is_map(t):
        return True
    if pa.types.is_struct(t):
        return any(_needs_restore(f.type) for f in t)
    if _is_list(t):
        return _needs_restore(t.value_type)
    return False


def _restore(value: Any, t: pa.DataType) -> Any:
    if value is None:
        return None
    if _is_binary(t):
        return base64.b64decode(value)
    if pa.types.is_map(t):
        return [(_restore(k, t.key_type), _restore(v, t.item_type)) for k, v in value]
    if pa.types.is_struct(t):
        return {f.name: _restore(value.get(f.name), f.type) for f in t}
    if _is_list(t):
        return [_restore(v, t.value_type) for v in value]
    return value


def serialize_schema(schema: pa.Schema) -> bytes:
    """Arrow IPC bytes of ``schema``."""
    return bytes(schema.serialize().to_pybytes())


def deserialize_schema(data: bytes) -> pa.Schema:
    """The schema :func:`serialize_schema` wrote."""

    return pa.ipc.read_schema(pa.py_buffer(data))


def schema_id(payload: bytes) -> str:
    """The id of the schema a payload was encoded with."""
    return payload[:SCHEMA_ID_LEN].decode("ascii")


# ------------------------------------------------------------------ payloads
def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__} value {value!r}")


_PAYLOAD_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, default=_json_default
)


def encode_payloads(features: pa.Table) -> tuple[str, bytes, list[bytes]]:
    """Encode each row of ``features``; returns ``(schema id, schema bytes, payloads)``."""
    schema = pa.schema([pa.field(f.name, f.type) for f in features.schema])
    schema_bytes = serialize_schema(schema)
    sid = hashlib.sha256(schema_bytes).hexdigest()[:SCHEMA_ID_LEN]
    prefix = sid.encode("ascii")
    names = schema.names
    wires = [_wire_type(f.type) for f in schema]
    # The columns as they are sent (decimals as text, times as integers, ...).
    wired = [
        column if wire == field.type else column.cast(wire)
        for field, column, wire in zip(schema, features.columns, wires, strict=True)
    ]
    if features.num_rows and all(_flat(w) for w in wires):
        table = pa.Table.from_arrays(wired, names=names)
        return sid, schema_bytes, _payloads_in_sql(table, prefix)
    columns = [column.to_pylist() for column in wired]
    dumps = _PAYLOAD_ENCODER.encode
    payloads = [
        prefix + dumps({n: v for n, v in zip(names, values, strict=True) if v is not None}).encode()
        for values in zip(*columns, strict=True)
    ]
    return sid, schema_bytes, payloads


_ENCODER_IDS = itertools.count()


@functools.cache
def _encoder_db() -> Any:
    """An in-memory DuckDB database for encoding payloads (opening one takes milliseconds)."""
    import duckdb

    return duckdb.connect()


def _flat(wire: pa.DataType) -> bool:
    types = pa.types
    return bool(
        types.is_integer(wire)
        or types.is_floating(wire)
        or types.is_boolean(wire)
        or types.is_string(wire)
        or types.is_large_string(wire)
    )


def _payloads_in_sql(features: pa.Table, prefix: bytes) -> list[bytes]:
    """The payloads of rows of numbers, booleans and text, built by DuckDB's ``json_object``
    instead of one Python encoder call per row. The JSON is the one :data:`_PAYLOAD_ENCODER`
    writes but for null fields, present as ``null`` rather than left out (both decode to
    None), and the decoded values are the same: numbers in their shortest exact form, ``NaN``
    and ``Infinity`` as Python writes them, text escaped."""
    from headwater.sql import quote_ident, sql_literal

    pairs = ", ".join(f"{sql_literal(n)}, {quote_ident(n)}" for n in features.column_names)
    # A cursor per call, and a name of its own: registered tables are seen by every cursor of
    # the database, and writers in other threads encode at the same time.
    name = f"__hw_features_{next(_ENCODER_IDS)}"
    con = _encoder_db().cursor()
    try:
        con.register(name, features)
        encoded = con.sql(
            f"SELECT encode({sql_literal(prefix.decode('ascii'))} || "
            f"CAST(json_object({pairs}) AS VARCHAR)) FROM {name}"
        ).to_arrow_table()
        con.unregister(name)
    finally:
        con.close()
    return list(encoded.column(0).to_pylist())


def decode_payloads(
    payloads: Sequence[bytes], schemas: Mapping[str, pa.Schema]
) -> list[dict[str, Any]]:
    """Decode payloads, each with the schema its id names; values as ``to_pylist`` gives."""
    out: list[dict[str, Any]] = [{} for _ in payloads]
    groups: dict[str, list[int]] = {}
    for i, payload in enumerate(payloads):
        groups.setdefault(schema_id(payload), []).append(i)
    for sid, positions in groups.items():
        schema = schemas.get(sid)
        if schema is None:
            raise HeadwaterError(
                f"online payload uses unknown schema {sid!r}",
                fix="re-materialize the view to rewrite its online rows",
            )
        objects = [json.loads(payloads[i][SCHEMA_ID_LEN:]) for i in positions]
        for field in schema:
            wire = _wire_type(field.type)
            values = [obj.get(field.name) for obj in objects]
            if _needs_restore(wire):
                values = [_restore(v, wire) for v in values]
            array = pa.array(values, type=wire)
            decoded = (array if wire == field.type else array.cast(field.type)).to_pylist()
            for i, value in zip(positions, decoded, strict=True):
                out[i][field.name] = value
    return out


def decode_stored(
    view: FeatureView, stored: Sequence[Stored | None], schemas: Mapping[str, pa.Schema]
) -> list[OnlineRow | None]:
    """Online rows (features in ``view.feature_names`` order) for stored entries."""
    decoded = iter(decode_payloads([s[2] for s in stored if s is not None], schemas))
    names = view.feature_names
    rows: list[OnlineRow | None] = []
    for entry in stored:
        if entry is None:
            rows.append(None)
        else:
            values = next(decoded)
            rows.append(OnlineRow({n: values.get(n) for n in names}, entry[0], entry[1]))
    return rows


# ------------------------------------------------------------------ batches
def epoch_ms(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Epoch milliseconds (int64, floored) of a timestamp column; naive means UTC."""
    import pyarrow.compute as pc

    floored = pc.floor_temporal(column, unit="millisecond")
    return pc.cast(pc.cast(floored, pa.timestamp("ms", tz="UTC")), pa.int64())


def _arange(n: int) -> pa.Array:
    import pyarrow.compute as pc

    return pc.subtract(pc.cumulative_sum(pa.repeat(1, n)), 1)


def latest_per_entity(table: pa.Table, join_keys: list[str]) -> pa.Table:
    """The latest row per entity by the online rule; later rows win full ties."""
    import pyarrow.compute as pc

    order: dict[str, Any] = {"ts": table.column("event_timestamp")}
    if "created_timestamp" in table.column_names:
        # Nulls sort lowest: compare the raw integers with nulls as the smallest int64.
        created = pc.cast(table.column("created_timestamp"), pa.int64())
        order["cts"] = pc.fill_null(created, pa.scalar(-(2**63), pa.int64()))
    order["pos"] = _arange(table.num_rows)
    sort_keys = [(name, "ascending") for name in order]
    indices = pc.sort_indices(pa.table(order), sort_keys=sort_keys)
    ranked = table.take(indices)
    ranked = ranked.append_column(_POS, _arange(ranked.num_rows))
    last = ranked.group_by(join_keys).aggregate([(_POS, "max")])
    positions = pc.array_sort_indices(last.column(f"{_POS}_max"))
    return ranked.take(pc.take(last.column(f"{_POS}_max"), positions)).drop_columns([_POS])


def prepare_rows(
    view: FeatureView, rows: pa.Table, *, keep_after_ms: int | None = None
) -> EncodedRows:
    """Validate, reduce to the latest row per entity, optionally drop rows whose event time is
    not after ``keep_after_ms``, and encode."""
    import pyarrow.compute as pc

    features = view.feature_names
    needed = [*view.join_keys, "event_timestamp", *features]
    missing = [c for c in needed if c not in rows.column_names]
    if missing:
        raise HeadwaterError(
            f"rows written online for view {view.name!r} lack column(s) {missing}",
            fix="pass join keys, event_timestamp and every feature column",
        )
    if rows.column("event_timestamp").null_count:
        raise HeadwaterError(
            f"rows written online for view {view.name!r} have a null event_timestamp",
            fix="drop or fill rows without an event time before writing",
        )
    has_created = "created_timestamp" in rows.column_names
    columns = [*view.join_keys, "event_timestamp", *(["created_timestamp"] if has_created else [])]
    latest = latest_per_entity(rows.select([*columns, *features]), view.join_keys)
    event_ms = epoch_ms(latest.column("event_timestamp"))
    if keep_after_ms is not None:
        keep = pc.greater(event_ms, pa.scalar(keep_after_ms, pa.int64()))
        latest, event_ms = latest.filter(keep), event_ms.filter(keep)
    created: list[int | None] = (
        epoch_ms(latest.column("created_timestamp")).to_pylist()
        if has_created
        else [None] * latest.num_rows
    )
    keys = encode_keys(latest, view.join_keys)
    sid, schema_bytes, payloads = encode_payloads(latest.select(features))
    return EncodedRows(keys, event_ms.to_pylist(), created, payloads, sid, schema_bytes)
