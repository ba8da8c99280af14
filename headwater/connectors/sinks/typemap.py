"""Arrow types to warehouse column types, and the casts applied to batches before staging.

Tables are created with the types of :func:`pg_type` / :func:`redshift_type`. Batches are
staged with types the stager can write (``pgpq``'s binary encoder for PostgreSQL, Parquet for
Redshift); the load casts from the staged type to the table's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from headwater.connectors.sinks.base import SinkError
from headwater.sql import quote_ident as q

if TYPE_CHECKING:
    import pyarrow as pa

_POSTGRES = {
    "bool": "boolean",
    "int16": "smallint",
    "int32": "integer",
    "int64": "bigint",
    "uint64": "numeric(20,0)",
    "float32": "real",
    "float64": "double precision",
    "text": "text",
    "binary": "bytea",
    "date": "date",
    "time": "time",
    "duration": "interval",
}
_REDSHIFT = {
    "bool": "BOOLEAN",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "uint64": "DECIMAL(20,0)",
    "float32": "REAL",
    "float64": "DOUBLE PRECISION",
    "text": "VARCHAR(65535)",
    "binary": "VARBYTE(1024000)",
    "date": "DATE",
    "time": "TIME",
}


def _family(dtype: pa.DataType) -> str | None:
    """The scalar family of an Arrow type (``None`` for decimals, timestamps and nested types)."""
    import pyarrow as pa

    t = pa.types
    checks = [
        ("bool", t.is_boolean(dtype)),
        ("int16", t.is_int8(dtype) or t.is_int16(dtype) or t.is_uint8(dtype)),
        ("int32", t.is_int32(dtype) or t.is_uint16(dtype)),
        ("int64", t.is_int64(dtype) or t.is_uint32(dtype)),
        ("uint64", t.is_uint64(dtype)),
        ("float32", t.is_float16(dtype) or t.is_float32(dtype)),
        ("float64", t.is_float64(dtype)),
        ("text", t.is_string(dtype) or t.is_large_string(dtype) or t.is_string_view(dtype)),
        ("text", t.is_null(dtype)),
        ("binary", t.is_binary(dtype) or t.is_large_binary(dtype)),
        ("binary", t.is_fixed_size_binary(dtype)),
        ("date", t.is_date(dtype)),
        ("time", t.is_time(dtype)),
        ("duration", t.is_duration(dtype)),
    ]
    return next((family for family, matches in checks if matches), None)


def pg_type(dtype: pa.DataType) -> str:
    """The PostgreSQL column type for an Arrow type: structs, maps and lists of them are
    ``jsonb``, other lists are arrays.

    Raises:
        SinkError: the type has no PostgreSQL column type here.
    """
    import pyarrow as pa

    t = pa.types
    family = _family(dtype)
    if family is not None:
        return _POSTGRES[family]
    if t.is_dictionary(dtype):
        return pg_type(dtype.value_type)
    if t.is_decimal(dtype):
        return f"numeric({dtype.precision},{dtype.scale})"
    if t.is_timestamp(dtype):
        return "timestamptz" if dtype.tz is not None else "timestamp"
    if t.is_struct(dtype) or t.is_map(dtype):
        return "jsonb"
    if t.is_list(dtype) or t.is_large_list(dtype) or t.is_fixed_size_list(dtype):
        inner = pg_type(dtype.value_type)
        return "jsonb" if inner == "jsonb" else inner.removesuffix("[]") + "[]"
    raise SinkError(
        f"Arrow type {dtype} has no PostgreSQL column type in the sink",
        fix="cast the feature in the view to a supported type (e.g. VARCHAR or JSON text)",
    )


def redshift_type(dtype: pa.DataType) -> str:
    """The Redshift column type for an Arrow type.

    Raises:
        SinkError: the type cannot be loaded from Parquet into a Redshift column here (nested
            types, durations, decimals over 38 digits).
    """
    import pyarrow as pa

    t = pa.types
    family = _family(dtype)
    if family in _REDSHIFT:
        return _REDSHIFT[family]
    if t.is_dictionary(dtype):
        return redshift_type(dtype.value_type)
    if t.is_decimal(dtype) and dtype.precision <= 38:
        return f"DECIMAL({dtype.precision},{dtype.scale})"
    if t.is_timestamp(dtype):
        return "TIMESTAMPTZ" if dtype.tz is not None else "TIMESTAMP"
    raise SinkError(
        f"Arrow type {dtype} cannot be loaded into Redshift by the sink",
        fix="cast the feature in the view to a scalar type (numbers, text, dates, timestamps; "
        "nested values as JSON text, decimals of at most 38 digits)",
    )


def column_types(
    schema: pa.Schema, to_type: Callable[[pa.DataType], str], *, where: str
) -> list[tuple[str, str]]:
    """``(name, warehouse type)`` of every column; an unsupported type names its column.

    Raises:
        SinkError: a column's type has no warehouse counterpart.
    """
    columns = []
    for field in schema:
        try:
            columns.append((field.name, to_type(field.type)))
        except SinkError as exc:
            raise SinkError(f"{where}: column {field.name!r}: {exc.message}", fix=exc.fix) from None
    return columns


def for_binary_copy(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Cast to types ``pgpq`` encodes: nested values to JSON text, dictionaries decoded,
    nanoseconds truncated to microseconds, ``date64`` to ``date32``, ``decimal256`` and
    all-null columns to text."""
    import pyarrow as pa

    t = pa.types

    def target(dtype: pa.DataType) -> pa.DataType | None:
        if t.is_timestamp(dtype) and dtype.unit == "ns":
            return pa.timestamp("us", tz=dtype.tz)
        if t.is_time64(dtype) and dtype.unit == "ns":
            return pa.time64("us")
        if t.is_duration(dtype) and dtype.unit == "ns":
            return pa.duration("us")
        if t.is_date64(dtype):
            return pa.date32()
        if t.is_null(dtype) or t.is_decimal256(dtype):
            return pa.string()
        return None

    return _cast_columns(nested_to_json(batch), target)


def for_parquet(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Cast to the Parquet types Redshift loads into the columns of :func:`redshift_type`."""
    import pyarrow as pa

    t = pa.types
    unsigned = {8: pa.int16(), 16: pa.int32(), 32: pa.int64(), 64: pa.decimal128(20, 0)}

    def target(dtype: pa.DataType) -> pa.DataType | None:
        if t.is_unsigned_integer(dtype):
            return unsigned[dtype.bit_width]
        if t.is_float16(dtype):
            return pa.float32()
        if t.is_large_string(dtype) or t.is_string_view(dtype) or t.is_null(dtype):
            return pa.string()
        if t.is_large_binary(dtype) or t.is_fixed_size_binary(dtype):
            return pa.binary()
        if t.is_date64(dtype):
            return pa.date32()
        if t.is_time(dtype):
            return pa.time64("us")
        if t.is_timestamp(dtype) and dtype.unit != "us":
            return pa.timestamp("us", tz=dtype.tz)
        if t.is_decimal256(dtype):
            return pa.decimal128(dtype.precision, dtype.scale)
        return None

    return _cast_columns(batch, target)


def _cast_columns(
    batch: pa.RecordBatch, target: Callable[[pa.DataType], pa.DataType | None]
) -> pa.RecordBatch:
    """Decode dictionary columns, then cast each column whose ``target(type)`` is not None."""
    import pyarrow as pa

    for index, field in enumerate(batch.schema):
        column = batch.column(index)
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        wanted = target(column.type)
        if wanted is not None:
            column = column.cast(wanted, safe=False)
        if column.type != field.type:
            batch = batch.set_column(index, pa.field(field.name, column.type), column)
    return batch


def is_nested(dtype: pa.DataType) -> bool:
    """True for structs and maps, and lists holding them (loaded as JSON)."""
    import pyarrow as pa

    if pa.types.is_struct(dtype) or pa.types.is_map(dtype):
        return True
    if pa.types.is_dictionary(dtype):
        return is_nested(dtype.value_type)
    if (
        pa.types.is_list(dtype)
        or pa.types.is_large_list(dtype)
        or pa.types.is_fixed_size_list(dtype)
        or pa.types.is_list_view(dtype)
        or pa.types.is_large_list_view(dtype)
    ):
        return is_nested(dtype.value_type)
    return False


def nested_to_json(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Replace nested columns (see :func:`is_nested`) by their JSON text, via DuckDB's
    ``to_json`` (vectorised; no per-row Python)."""
    import duckdb
    import pyarrow as pa

    nested = [f.name for f in batch.schema if is_nested(f.type)]
    if not nested:
        return batch
    con = duckdb.connect()
    try:
        con.register("__hw_batch", batch)
        select = ", ".join(f"CAST(to_json({q(n)}) AS VARCHAR) AS {q(n)}" for n in nested)
        table = con.sql(f"SELECT {select} FROM __hw_batch").to_arrow_table()
    finally:
        con.close()
    for name in nested:
        index = batch.schema.get_field_index(name)
        text = table.column(name).combine_chunks().cast(pa.string())
        batch = batch.set_column(index, pa.field(name, pa.string()), text)
    return batch
