"""PostgreSQL types as Arrow types, and the normalisation of what the driver returns to them.

=============================================  ==========================================
PostgreSQL                                     Arrow
=============================================  ==========================================
``smallint``, ``integer``, ``bigint``          ``int16``, ``int32``, ``int64``
``real``, ``double precision``                 ``float32``, ``float64``
``numeric(p, s)``                              ``decimal128(p, s)``
``numeric`` (no precision)                     ``decimal128(38, 18)``
``boolean``                                    ``bool``
``text``, ``varchar``, ``char(n)``, ``name``   ``string``
``bytea``                                      ``binary``
``date``, ``time``                             ``date32``, ``time64[us]``
``timestamp``, ``timestamptz``                 ``timestamp[us]``, ``timestamp[us, UTC]``
``interval``                                   ``month_day_nano_interval``
``uuid``, ``json``, ``jsonb``, enums           ``string`` (the text form)
arrays of the above                            ``list<...>``
=============================================  ==========================================

Every field carries ``{"pg_type": "<type>"}`` metadata. A numeric value that does not fit its
decimal, and ``infinity`` dates and times, are errors naming the column: digits are never lost
silently. Other types are refused with the workaround: cast them in ``query=``. See
docs/decisions/0009-postgres-arrow-reader.md for the reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.errors import DefinitionError
from headwater.sql import quote_ident

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa

NUMERIC_DEFAULT = (38, 18)
"""Precision and scale of an unconstrained ``numeric`` (Spark's JDBC reader uses the same)."""

AS_TEXT = {18, 19, 114, 1700, 2950, 3802}
"""``"char"``, ``name``, ``json``, ``numeric``, ``uuid``, ``jsonb``: sent as text (and so are
enums). ``numeric`` becomes decimal128 on arrival; the server's text is cheaper to take than the
driver's decoding of binary numerics (about a third of the client's time on a table with one
numeric column)."""

_MIN_US = -210_866_803_200_000_000
"""4714-11-24 BC, PostgreSQL's first timestamp, in microseconds since 1970."""
_MIN_DAYS = -2_440_588
"""The same day, in days since 1970. The driver turns ``±infinity`` into values below these."""


def _scalars() -> dict[int, Callable[[], pa.DataType]]:
    import pyarrow as pa

    string = pa.string
    return {
        16: pa.bool_,
        17: pa.binary,
        18: string,
        19: string,
        20: pa.int64,
        21: pa.int16,
        23: pa.int32,
        25: string,
        114: string,
        700: pa.float32,
        701: pa.float64,
        1042: string,
        1043: string,
        1082: pa.date32,
        1083: lambda: pa.time64("us"),
        1114: lambda: pa.timestamp("us"),
        1184: lambda: pa.timestamp("us", tz="UTC"),
        1186: pa.month_day_nano_interval,
        2950: string,
        3802: string,
    }


@dataclass(frozen=True)
class PgType:
    """A type as the catalog describes it (domains resolved to their base type)."""

    oid: int
    typname: str
    kind: str
    """``pg_type.typtype``: ``b`` base, ``e`` enum, ``c`` composite, ``r`` range, ..."""
    sql_name: str
    """``format_type(oid, NULL)``, usable in a cast."""
    element: PgType | None = None

    @property
    def as_text(self) -> bool:
        """True when the server should send the values as text."""
        base = self.element or self
        return base.oid in AS_TEXT or base.kind == "e"


@dataclass(frozen=True)
class PgColumn:
    """A result column: its name, type and type modifier (``numeric(p, s)``)."""

    name: str
    type: PgType
    typmod: int = -1


def lookup_types(conn: psycopg.Connection[Any], oids: set[int]) -> dict[int, PgType]:
    """The catalog's description of ``oids`` (and of their array elements and domain bases)."""
    rows: dict[int, tuple[str, str, int, int, str]] = {}
    wanted = set(oids)
    while wanted:
        cur = conn.execute(
            "SELECT t.oid::int, t.typname, t.typtype, t.typelem::int, t.typbasetype::int, "
            "format_type(t.oid, NULL) FROM pg_catalog.pg_type t WHERE t.oid = ANY(%s::oid[])",
            [sorted(wanted)],
        )
        for oid, typname, kind, elem, base, sql_name in cur.fetchall():
            rows[oid] = (typname, kind, elem, base, sql_name)
        linked = {oid for r in rows.values() for oid in (r[2], r[3]) if oid}
        wanted = linked - set(rows)

    def build(oid: int) -> PgType:
        typname, kind, elem, base, sql_name = rows[oid]
        if kind == "d" and base in rows:
            return build(base)
        element = build(elem) if elem and typname.startswith("_") and elem in rows else None
        return PgType(oid, typname, kind, sql_name, element)

    return {oid: build(oid) for oid in oids if oid in rows}


def _numeric(typmod: int) -> tuple[int, int]:
    if typmod < 4:
        return NUMERIC_DEFAULT
    precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (((typmod - 4) & 0x7FF) ^ 1024) - 1024
    if scale < 0:  # numeric(5, -2): whole numbers of up to 7 digits
        precision, scale = precision - scale, 0
    return min(precision, 38), min(scale, 38)


def _label(pg: PgType, typmod: int) -> str:
    if pg.element is not None:
        return _label(pg.element, typmod) + "[]"
    if pg.oid == 1700 and typmod >= 4:
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (((typmod - 4) & 0x7FF) ^ 1024) - 1024
        return f"numeric({precision},{scale})"
    return pg.typname


def _arrow_type(pg: PgType, typmod: int) -> pa.DataType | None:
    import pyarrow as pa

    if pg.element is not None:
        inner = _arrow_type(pg.element, typmod)
        return None if inner is None else pa.list_(inner)
    if pg.oid == 1700:
        return pa.decimal128(*_numeric(typmod))
    if pg.kind == "e":
        return pa.string()
    factory = _scalars().get(pg.oid)
    return None if factory is None else factory()


def arrow_field(column: PgColumn, *, what: str) -> pa.Field:
    """The Arrow field of ``column``, with ``pg_type`` metadata.

    Raises:
        DefinitionError: the type has no mapping; the message says how to cast it.
    """
    import pyarrow as pa

    arrow = _arrow_type(column.type, column.typmod)
    if arrow is None:
        name = quote_ident(column.name)
        raise DefinitionError(
            f"{what}: column {column.name!r} has the PostgreSQL type "
            f"{column.type.sql_name!r}, which headwater does not read",
            fix=f"cast it in query=, e.g. SELECT ..., {name}::text AS {name} FROM ...",
        )
    label = _label(column.type, column.typmod)
    return pa.field(column.name, arrow, metadata={"pg_type": label})


def protocol_field(name: str, oid: int, precision: int | None, scale: int | None) -> pa.Field:
    """The field of a column described by a server that speaks the protocol but has another
    catalog (Redshift): built-in types by OID, anything else as text."""
    import pyarrow as pa

    if oid == 1700:
        arrow = pa.decimal128(*(NUMERIC_DEFAULT if precision is None else (precision, scale or 0)))
    else:
        arrow = _scalars().get(oid, pa.string)()
    return pa.field(name, arrow)


def select_expr(column: PgColumn) -> str:
    """The column in the reader's SELECT list (types read as text are cast there)."""
    name = quote_ident(column.name)
    if not column.type.as_text:
        return name
    return f"{name}::text{'[]' if column.type.element is not None else ''} AS {name}"


def row_bytes(schema: pa.Schema) -> int:
    """A rough width of a row of ``schema`` in Arrow memory, for batch size hints."""
    import pyarrow as pa

    width = 0
    for field in schema:
        kind = field.type
        if pa.types.is_list(kind):
            width += 64
        elif pa.types.is_string(kind) or pa.types.is_binary(kind):
            width += 32
        else:
            width += max(1, kind.bit_width // 8)
    return max(width, 1)


# ---------------------------------------------------------------------- normalisation
def conform_batch(batch: pa.RecordBatch, schema: pa.Schema, *, what: str) -> pa.RecordBatch:
    """``batch`` as the driver returned it, converted to ``schema`` (names and order match).

    Raises:
        DefinitionError: a value does not fit its column's type (named in the message).
    """
    import pyarrow as pa

    arrays = [
        conform_array(batch.column(i), field.type, where=f"{what}: column {field.name!r}")
        for i, field in enumerate(schema)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def conform_array(array: pa.Array, target: pa.DataType, *, where: str) -> pa.Array:
    """One column converted to ``target``; ``where`` names it in errors."""
    import pyarrow as pa

    if isinstance(array, pa.ExtensionArray):  # opaque numerics, JSON: their text storage
        array = array.storage
    if pa.types.is_list(target) and pa.types.is_list(array.type):
        values = conform_array(array.values, target.value_type, where=where)
        mask = array.is_null() if array.null_count else None
        return pa.ListArray.from_arrays(array.offsets, values, type=target, mask=mask)
    if pa.types.is_decimal(target) and pa.types.is_string(array.type):
        return _decimals(array, target, where)
    if array.type != target:
        try:
            array = array.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DefinitionError(
                f"{where}: the driver returned {array.type}, which does not convert to "
                f"{target}: {exc}",
                fix="cast the column in query= to a type listed in docs/connectors/postgres.md",
            ) from None
    if pa.types.is_timestamp(target) or pa.types.is_date(target):
        _check_range(array, target, where)
    return array


def _decimals(array: pa.Array, target: pa.Decimal128Type, where: str) -> pa.Array:
    import pyarrow as pa

    try:
        return array.cast(target)
    except pa.ArrowInvalid:
        pass
    for value in array.to_pylist():  # only on failure: find the value to name
        try:
            pa.array([value], pa.string()).cast(target)
        except pa.ArrowInvalid:
            if value.lower() in _NON_FINITE:
                problem = f"is not a finite number, which {target} cannot hold"
            else:
                problem = f"does not fit {target} without losing digits"
            raise DefinitionError(
                f"{where}: the numeric value {value} {problem}",
                fix="declare the column numeric(p, s) wide enough, or cast it in query= "
                "(e.g. round(col, 6), col::float8 or col::text)",
            ) from None
    raise AssertionError("unreachable: the batch cast failed but every value converts")


_NON_FINITE = ("nan", "infinity", "-infinity")


def _check_range(array: pa.Array, target: pa.DataType, where: str) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(array) or array.null_count == len(array):
        return
    is_date = pa.types.is_date(target)
    raw = array.cast(pa.int32() if is_date else pa.int64())
    if pc.min(raw).as_py() < (_MIN_DAYS if is_date else _MIN_US):
        raise DefinitionError(
            f"{where} holds 'infinity', '-infinity' or a value outside what Arrow can hold",
            fix="map it in query=, e.g. NULLIF(col, 'infinity') or least(col, '9999-12-31')",
        )
