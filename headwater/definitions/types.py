"""Type names: DuckDB types, and the one table of aliases checks and transforms accept for them.

``checks.type``, ``checks.schema`` and ``transforms.cast`` take a DuckDB type (``BIGINT``,
``DOUBLE``, ``DECIMAL(12,2)``, ``TIMESTAMPTZ``, ``VARCHAR[]``...) or an alias from
:data:`TYPE_ALIASES` — Arrow's names (``int64``, ``large_string``, ``timestamp[ms, tz=UTC]``)
and Python's (``int``, ``str``, ``bytes``) — and store the DuckDB name, so a check and a cast
spelled alike mean the same type. Aliases are matched ignoring case and spaces, and they win
over DuckDB's own short names: ``float`` (and ``FLOAT``) is Python's float, a ``DOUBLE`` (write
``REAL`` or ``float32`` for 4 bytes; Arrow prints ``float32`` as ``float``), ``int`` is
Python's int, a ``BIGINT``, and ``int8`` is Arrow's 8-bit integer, a ``TINYINT``.
"""

from __future__ import annotations

import re

from headwater.errors import DefinitionError

TYPE_ALIASES: dict[str, str] = {
    # Integers.
    "int": "BIGINT",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "uint8": "UTINYINT",
    "uint16": "USMALLINT",
    "uint32": "UINTEGER",
    "uint64": "UBIGINT",
    # Floating point.
    "float": "DOUBLE",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    # Text, booleans, bytes.
    "str": "VARCHAR",
    "string": "VARCHAR",
    "utf8": "VARCHAR",
    "large_string": "VARCHAR",
    "large_utf8": "VARCHAR",
    "bool": "BOOLEAN",
    "bytes": "BLOB",
    "binary": "BLOB",
    "large_binary": "BLOB",
    # Dates and times (Arrow spells them as pyarrow prints them).
    "date32": "DATE",
    "date32[day]": "DATE",
    "date64": "DATE",
    "date64[ms]": "DATE",
    "timestamp[s]": "TIMESTAMP_S",
    "timestamp[ms]": "TIMESTAMP_MS",
    "timestamp[us]": "TIMESTAMP",
    "timestamp[ns]": "TIMESTAMP_NS",
    "timestamptz": "TIMESTAMPTZ",
    "timestamp[s,utc]": "TIMESTAMPTZ",
    "timestamp[ms,utc]": "TIMESTAMPTZ",
    "timestamp[us,utc]": "TIMESTAMPTZ",
    "timestamp[s,tz=utc]": "TIMESTAMPTZ",
    "timestamp[ms,tz=utc]": "TIMESTAMPTZ",
    "timestamp[us,tz=utc]": "TIMESTAMPTZ",
}
"""Alias (lower case, without spaces) -> DuckDB type. Looked up ignoring case and spaces."""

_TYPE_NAME = re.compile(
    r"^[A-Za-z][A-Za-z0-9_]*( [A-Za-z][A-Za-z0-9_]*)*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])?$"
)
"""What a DuckDB type name may look like here: words, an optional ``(precision, scale)`` and
``[]``. Type names are written into SQL (``TRY_CAST(x AS <type>)``), so nothing else passes."""


def normalise_type(type_name: object, where: str) -> str:
    """The DuckDB type ``type_name`` names: an alias's type, or the name in upper case.

    Args:
        type_name: a DuckDB type or an alias of :data:`TYPE_ALIASES`.
        where: what the type belongs to, for the error (``"check 'type(amount)'"``).

    Raises:
        DefinitionError: ``type_name`` is neither an alias nor shaped like a type name.
    """
    if isinstance(type_name, str):
        alias = TYPE_ALIASES.get("".join(type_name.lower().split()))
        if alias is not None:
            return alias
    if not isinstance(type_name, str) or not _TYPE_NAME.match(type_name.strip()):
        raise DefinitionError(
            f"{where}: {type_name!r} is not a type name",
            fix="use a DuckDB type such as BIGINT, DOUBLE, DECIMAL(12,2), DATE, TIMESTAMPTZ, "
            "VARCHAR (or int64, float64, string)",
        )
    return type_name.strip().upper()
