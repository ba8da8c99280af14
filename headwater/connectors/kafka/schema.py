"""Types of Kafka payloads: declared Arrow type text, Avro schemas mapped to Arrow, and the
checks that name what is wrong with one JSON value.

A declared JSON schema maps columns to Arrow type text (``"int64"``, ``"timestamp[ms, UTC]"``,
``"decimal128(12, 2)"``, ``"list<string>"``) or to ``pyarrow.DataType`` objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from headwater.errors import DefinitionError

if TYPE_CHECKING:
    import pyarrow as pa

TYPE_EXAMPLES = "int64, double, string, bool, timestamp[ms, UTC], decimal128(12, 2), list<int64>"

_TIMESTAMP = re.compile(
    r"^timestamp\[\s*(s|ms|us|ns)\s*(?:,\s*(?:tz\s*=\s*)?([^\]]+?)\s*)?\]$", re.IGNORECASE
)
_DECIMAL = re.compile(r"^decimal(?:128)?\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_LIST = re.compile(r"^list\s*<\s*(.+)\s*>$")
_OFFSET = re.compile(r"^[+-]\d\d:\d\d$")


def _simple_types() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {
        "int8": pa.int8(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "uint8": pa.uint8(),
        "uint16": pa.uint16(),
        "uint32": pa.uint32(),
        "uint64": pa.uint64(),
        "float": pa.float32(),
        "float32": pa.float32(),
        "double": pa.float64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "boolean": pa.bool_(),
        "string": pa.string(),
        "utf8": pa.string(),
        "large_string": pa.large_string(),
        "binary": pa.binary(),
        "date32": pa.date32(),
        "date": pa.date32(),
    }


def parse_arrow_type(text: Any, *, where: str, column: str) -> pa.DataType:
    """The Arrow type that ``text`` names (a ``pyarrow.DataType`` passes through).

    Args:
        text: type text such as ``"int64"``, ``"timestamp[ms, UTC]"``, ``"decimal128(12, 2)"``.
        where: names the source in errors (``"kafka source 'clicks'"``).
        column: the column whose type this is, for errors.

    Raises:
        DefinitionError: the text names no type headwater reads.
    """
    import pyarrow as pa

    if isinstance(text, pa.DataType):
        return text
    spec = str(text).strip()
    lowered = spec.lower()
    simple = _simple_types().get(lowered)
    if simple is not None:
        return simple
    if match := _TIMESTAMP.match(spec):
        unit, zone = match.group(1).lower(), match.group(2)
        if zone is None:
            return pa.timestamp(unit)
        zone = "UTC" if zone.upper() in ("UTC", "Z") else zone
        _check_zone(zone, where=where, column=column, text=spec)
        return pa.timestamp(unit, tz=zone)
    if match := _DECIMAL.match(lowered):
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= 38:
            raise DefinitionError(
                f"{where}: column {column!r}: {spec!r} has precision {precision}, outside 1..38",
                fix="use decimal128(P, S) with 1 <= P <= 38, e.g. decimal128(12, 2)",
            )
        return pa.decimal128(precision, scale)
    if match := _LIST.match(spec):
        return pa.list_(parse_arrow_type(match.group(1), where=where, column=column))
    raise DefinitionError(
        f"{where}: column {column!r} has the unknown type {spec!r}",
        fix=f"use an Arrow type name such as {TYPE_EXAMPLES}",
    )


def _check_zone(zone: str, *, where: str, column: str, text: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if _OFFSET.match(zone):
        return
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DefinitionError(
            f"{where}: column {column!r}: {text!r} names the unknown time zone {zone!r}",
            fix="use UTC, an IANA zone such as Europe/Paris, or an offset such as +01:00",
        ) from None


def declared_schema(columns: Mapping[str, Any], *, where: str) -> pa.Schema:
    """The Arrow schema of a declared ``{column: type}`` mapping."""
    import pyarrow as pa

    if not columns:
        raise DefinitionError(
            f"{where}: the declared schema has no columns",
            fix='list the payload columns, e.g. schema={"user_id": "int64"}',
        )
    return pa.schema(
        [
            pa.field(name, parse_arrow_type(spec, where=where, column=name))
            for name, spec in columns.items()
        ]
    )


# ---------------------------------------------------------------------- JSON values
def json_kind(value: Any) -> str:
    """How JSON names the kind of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _shown(value: Any) -> str:
    import json

    if isinstance(value, str):
        text = f"'{value}'"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


JsonCheck = Callable[[Any, str], "str | None"]
"""``check(value, path)``: why a decoded JSON value does not fit a column (``None``: it fits)."""


def json_checker(arrow_type: pa.DataType) -> JsonCheck:
    """The check of JSON values against ``arrow_type``, built once per column.

    The rules are those of Arrow's JSON reader with an explicit schema, so that the values it
    accepts are the values a bulk read accepts; ``null`` fits every column.
    """
    import pyarrow as pa

    expected = str(arrow_type)

    def wrong(value: Any, path: str) -> str:
        return f"field {path!r}: expected {expected}, got {json_kind(value)} {_shown(value)}"

    def accept(types: tuple[type, ...]) -> JsonCheck:
        def check(value: Any, path: str) -> str | None:
            return None if value is None or type(value) in types else wrong(value, path)

        return check

    if pa.types.is_integer(arrow_type):
        low, high = _integer_range(arrow_type)

        def integer(value: Any, path: str) -> str | None:
            if value is None:
                return None
            if type(value) is not int:
                return wrong(value, path)
            if low <= value <= high:
                return None
            return f"field {path!r}: {value} is out of the range of {expected}"

        return integer
    if pa.types.is_floating(arrow_type):
        return accept((int, float))
    if pa.types.is_boolean(arrow_type):
        return accept((bool,))
    if (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
    ):
        return accept((str,))
    if pa.types.is_decimal(arrow_type):

        def decimal(value: Any, path: str) -> str | None:
            if value is None:
                return None
            return _decimal_problem(value, arrow_type, path, wrong)

        return decimal
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        item_check = json_checker(arrow_type.value_type)

        def items(value: Any, path: str) -> str | None:
            if value is None:
                return None
            if type(value) is not list:
                return wrong(value, path)
            for index, item in enumerate(value):
                problem = item_check(item, f"{path}[{index}]")
                if problem:
                    return problem
            return None

        return items
    if pa.types.is_struct(arrow_type):
        children = [(child.name, json_checker(child.type)) for child in arrow_type]

        def struct(value: Any, path: str) -> str | None:
            if value is None:
                return None
            if type(value) is not dict:
                return wrong(value, path)
            for name, check in children:
                problem = check(value.get(name), f"{path}.{name}")
                if problem:
                    return problem
            return None

        return struct
    return lambda value, path: None


def _integer_range(arrow_type: pa.DataType) -> tuple[int, int]:
    bits = arrow_type.bit_width
    if arrow_type.id in _unsigned_ids():
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _unsigned_ids() -> set[int]:
    import pyarrow as pa

    return {t.id for t in (pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64())}


def _decimal_problem(
    value: Any, arrow_type: pa.DataType, path: str, wrong: Callable[[Any, str], str]
) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return wrong(value, path)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return wrong(value, path)
    if not number.is_finite():
        return wrong(value, path)
    _sign, digits, exponent = number.as_tuple()
    scale = -int(exponent) if isinstance(exponent, int) else 0
    if scale > arrow_type.scale:
        return f"field {path!r}: {value} has more than {arrow_type.scale} decimal places"
    if len(digits) - scale + arrow_type.scale > arrow_type.precision:
        return f"field {path!r}: {value} has more digits than {arrow_type} holds"
    return None


# ---------------------------------------------------------------------- Avro
_AVRO_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")


def avro_to_arrow(schema: Any, *, where: str) -> pa.Schema:
    """The Arrow schema of the records an Avro ``record`` schema describes.

    ``long``→int64, ``int``→int32, ``float``, ``double``, ``boolean``, ``string``,
    ``bytes``→binary, ``timestamp-millis``→``timestamp[ms, UTC]`` (``-micros``: ``us``),
    ``date``→date32, ``decimal``→decimal128, enums→string, arrays→list, maps→map, records→struct,
    ``["null", T]``→nullable T.

    Raises:
        DefinitionError: the schema is not a record, or uses a union Arrow cannot hold.
    """
    import pyarrow as pa

    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise DefinitionError(
            f"{where}: the Avro schema must be a record (one field per column)",
            fix='give {"type": "record", "name": ..., "fields": [...]}',
        )
    named: dict[str, pa.DataType] = {}
    struct = _avro_type(schema, named, where=where, path="")
    return pa.schema(list(struct))


def _avro_type(spec: Any, named: dict[str, pa.DataType], *, where: str, path: str) -> pa.DataType:
    import pyarrow as pa

    if isinstance(spec, str):
        primitive = {
            "null": pa.null(),
            "boolean": pa.bool_(),
            "int": pa.int32(),
            "long": pa.int64(),
            "float": pa.float32(),
            "double": pa.float64(),
            "bytes": pa.binary(),
            "string": pa.string(),
        }.get(spec)
        if primitive is not None:
            return primitive
        found = named.get(spec) or next(
            (t for name, t in named.items() if name.rsplit(".", 1)[-1] == spec), None
        )
        if found is None:
            raise DefinitionError(
                f"{where}: field {path!r} uses the unknown Avro type {spec!r}",
                fix="define named types before using them",
            )
        return found
    if isinstance(spec, list):
        members = [m for m in spec if m != "null"]
        if len(members) != 1:
            raise DefinitionError(
                f"{where}: field {path!r} is a union of {spec!r}, which has no Arrow type",
                fix='use a single type or ["null", type]',
            )
        return _avro_type(members[0], named, where=where, path=path)
    if not isinstance(spec, dict):
        raise DefinitionError(f"{where}: field {path!r} has the invalid Avro type {spec!r}")
    kind, logical = spec.get("type"), spec.get("logicalType")
    logical_type = _avro_logical(kind, logical, spec)
    if logical_type is not None:
        return logical_type
    if kind == "record":
        fields = [
            pa.field(
                f["name"], _avro_type(f["type"], named, where=where, path=_join(path, f["name"]))
            )
            for f in spec.get("fields", [])
        ]
        struct = pa.struct(fields)
        named[_full_name(spec)] = struct
        return struct
    if kind == "enum":
        named[_full_name(spec)] = pa.string()
        return pa.string()
    if kind == "fixed":
        named[_full_name(spec)] = pa.binary()
        return pa.binary()
    if kind == "array":
        return pa.list_(_avro_type(spec["items"], named, where=where, path=path + "[]"))
    if kind == "map":
        return pa.map_(pa.string(), _avro_type(spec["values"], named, where=where, path=path))
    return _avro_type(kind, named, where=where, path=path)


def _avro_logical(kind: Any, logical: Any, spec: dict[str, Any]) -> pa.DataType | None:
    import pyarrow as pa

    if logical == "timestamp-millis" and kind == "long":
        return pa.timestamp("ms", tz="UTC")
    if logical == "timestamp-micros" and kind == "long":
        return pa.timestamp("us", tz="UTC")
    if logical == "local-timestamp-millis" and kind == "long":
        return pa.timestamp("ms")
    if logical == "local-timestamp-micros" and kind == "long":
        return pa.timestamp("us")
    if logical == "date" and kind == "int":
        return pa.date32()
    if logical == "time-millis" and kind == "int":
        return pa.time32("ms")
    if logical == "time-micros" and kind == "long":
        return pa.time64("us")
    if logical == "decimal" and kind in ("bytes", "fixed"):
        return pa.decimal128(int(spec["precision"]), int(spec.get("scale", 0)))
    if logical == "uuid" and kind == "string":
        return pa.string()
    return None


def _full_name(spec: dict[str, Any]) -> str:
    name = str(spec.get("name", ""))
    namespace = spec.get("namespace")
    return f"{namespace}.{name}" if namespace and "." not in name else name


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def avro_uuid_fields(schema: dict[str, Any]) -> list[str]:
    """Top-level fields of logical type ``uuid`` (the Avro reader returns ``UUID`` objects)."""
    found = []
    for spec in schema.get("fields", []):
        kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        if any(isinstance(k, dict) and k.get("logicalType") == "uuid" for k in kinds):
            found.append(spec["name"])
    return found
