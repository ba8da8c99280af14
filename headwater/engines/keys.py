"""Entity key values: one rule for every read path.

``get --entity``, ``POST /features/online``, ``FeatureStore.get_online_features`` and the entity
frames of ``get_historical_features`` all hand their key values to :func:`coerce_key`, with the
type the view's output schema declares for the key. A value is converted only when nothing is
lost (``"1"`` → ``1`` for an integer key, ``1.0`` → ``1``, ``7`` → ``"7"`` for a text key);
anything else (``"1.5"`` or ``"abc"`` for an integer key, a number past the type's range) is
refused with one line naming the key, its declared type and the value — never looked up as a
key that cannot exist, which would answer nulls as if the entity were unknown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from headwater.errors import DefinitionError, InvalidEntityKey

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.definitions import FeatureView

_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = {"true", "t", "yes", "1"}
_FALSE = {"false", "f", "no", "0"}


class _Refused(Exception):
    """The value does not fit the type; ``reason`` says why (empty: plainly not of it)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


def coerce_key(value: Any, *, key: str, type: pa.DataType, view: str | None = None) -> Any:
    """``value`` as a Python value of ``type``, converted only when nothing is lost.

    Raises:
        InvalidEntityKey: the value is not of the key's type and cannot become one losslessly.
    """
    if value is None:
        return None
    if type_module(value) == "numpy":  # a NumPy scalar, e.g. from a pandas column
        value = value.item()
    try:
        return _coerce(value, type)
    except _Refused as refused:
        where = f" of view {view!r}" if view else ""
        reason = f" ({refused.reason})" if refused.reason else ""
        raise InvalidEntityKey(
            f"entity key {key!r}{where} is {type_name(type)}, but was given {value!r}{reason}",
            fix=f"pass {key} as {_example(type)}",
        ) from None


def coerce_rows(
    rows: Sequence[dict[str, Any]], key_types: dict[str, tuple[pa.DataType, str]]
) -> list[dict[str, Any]]:
    """Entity rows with every key of ``key_types`` (key -> (type, view)) coerced."""
    out = []
    for row in rows:
        fixed = dict(row)
        for key, (type_, view) in key_types.items():
            if key in fixed:
                fixed[key] = coerce_key(fixed[key], key=key, type=type_, view=view)
        out.append(fixed)
    return out


def type_module(value: Any) -> str:
    """The top-level module of ``value``'s type (``numpy`` for NumPy scalars)."""
    return type(value).__module__.split(".")[0]


def online_entity_rows(
    rows: Sequence[dict[str, Any]], views: Sequence[tuple[FeatureView, pa.Schema]]
) -> tuple[list[dict[str, Any]], dict[str, tuple[pa.DataType, str]]]:
    """The entity rows of an online lookup of ``views`` (with their output schemas), every
    key coerced, and the key types.

    Raises:
        DefinitionError: a view's join key is missing, or a key is none of the views' join
            keys (a typo would otherwise answer nulls, as for an unknown entity).
        InvalidEntityKey: a value does not fit its key's type.
    """
    given: list[str] = []
    for row in rows:
        given += [k for k in row if k not in given]
    join_keys: list[str] = []
    for view, _ in views:
        missing = [k for k in view.join_keys if k not in given]
        if missing:
            raise DefinitionError(
                f"entity rows lack join key {missing[0]!r} of view {view.name!r}",
                fix=f"pass entity_rows=[{{{missing[0]!r}: ...}}]",
            )
        join_keys += [k for k in view.join_keys if k not in join_keys]
    unknown = [k for k in given if k not in join_keys]
    if unknown:
        raise DefinitionError(
            f"entity key {unknown[0]!r} is not a join key of the requested features' views",
            fix=f"use {', '.join(join_keys)}",
        )
    types = key_types(views)
    return coerce_rows(rows, types), types


def coerce_table(table: pa.Table, key_types: dict[str, tuple[pa.DataType, str]]) -> pa.Table:
    """An entity frame whose key columns (of ``key_types``) hold their declared types; a
    column already of its type is kept as it is."""
    import pyarrow as pa

    for key, (type_, view) in key_types.items():
        if key not in table.column_names:
            continue
        column = table.column(key)
        if column.type.equals(type_):
            continue
        index = table.column_names.index(key)
        if pa.types.is_integer(column.type) and pa.types.is_integer(type_):
            try:  # the same rule, vectorised: Arrow's safe cast refuses values out of range
                table = table.set_column(index, key, column.cast(type_, safe=True))
                continue
            except (pa.ArrowInvalid, OverflowError):
                pass  # the loop below names the value
        values = [coerce_key(v, key=key, type=type_, view=view) for v in column.to_pylist()]
        table = table.set_column(index, key, pa.array(values, type=type_))
    return table


def key_types(
    views: Iterable[tuple[FeatureView, pa.Schema]],
) -> dict[str, tuple[pa.DataType, str]]:
    """Join key -> (declared type, view) over ``views``; the first view naming a key wins."""
    found: dict[str, tuple[pa.DataType, str]] = {}
    for view, schema in views:
        for key in view.join_keys:
            if key not in found and schema.get_field_index(key) >= 0:
                found[key] = (schema.field(key).type, view.name)
    return found


def type_name(type_: pa.DataType) -> str:
    """How an error names a key type: ``an integer (int64)``, ``text (string)``."""
    import pyarrow.types as pt

    kind = (
        "an integer"
        if pt.is_integer(type_)
        else "a number"
        if pt.is_floating(type_) or pt.is_decimal(type_)
        else "text"
        if pt.is_string(type_) or pt.is_large_string(type_)
        else "a boolean"
        if pt.is_boolean(type_)
        else "a timestamp"
        if pt.is_timestamp(type_)
        else "a date"
        if pt.is_date(type_)
        else "a value"
    )
    return f"{kind} ({type_})"


def _example(type_: pa.DataType) -> str:
    import pyarrow.types as pt

    if pt.is_integer(type_):
        return "a whole number within the type's range, e.g. 1"
    if pt.is_floating(type_) or pt.is_decimal(type_):
        return "a number, e.g. 1.5"
    if pt.is_timestamp(type_):
        return "an ISO 8601 time, e.g. 2024-01-01T00:00:00Z"
    if pt.is_date(type_):
        return "an ISO 8601 date, e.g. 2024-01-01"
    if pt.is_boolean(type_):
        return "true or false"
    return f"a {type_} value"


# ---------------------------------------------------------------------- the rule, per type
def _coerce(value: Any, type_: pa.DataType) -> Any:
    import pyarrow.types as pt

    if pt.is_integer(type_):
        return _integer(value, type_)
    if pt.is_floating(type_):
        return _floating(value)
    if pt.is_string(type_) or pt.is_large_string(type_):
        return _text(value)
    if pt.is_boolean(type_):
        return _boolean(value)
    if pt.is_timestamp(type_):
        return _timestamp(value, type_)
    if pt.is_date(type_):
        return _date(value)
    if pt.is_decimal(type_):
        return _decimal(value, type_)
    return _scalar(value, type_)


def _integer(value: Any, type_: pa.DataType) -> int:
    if isinstance(value, bool):
        raise _Refused()
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise _Refused()
        number = int(value)
    elif isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise _Refused()
        number = int(value)
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise _Refused()
    low, high = _integer_range(type_)
    if not low <= number <= high:
        raise _Refused(f"out of range: {type_} holds {low} to {high}")
    return number


def _integer_range(type_: pa.DataType) -> tuple[int, int]:
    import pyarrow.types as pt

    bits = type_.bit_width
    if pt.is_unsigned_integer(type_):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _floating(value: Any) -> float:
    if isinstance(value, bool):
        raise _Refused()
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        number = float(value)
        if int(number) != value:
            raise _Refused("not exactly representable as a float")
        return number
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _Refused() from None
    raise _Refused()


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # the digits are the key: nothing is lost
    raise _Refused()


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Refused()


def _timestamp(value: Any, type_: pa.DataType) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Refused() from None
    if not isinstance(value, datetime):
        raise _Refused()
    moment: datetime = value
    if type_.tz is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        raise _Refused()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise _Refused() from None
    raise _Refused()


def _decimal(value: Any, type_: pa.DataType) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise _Refused()
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise _Refused() from None
    if number != number.quantize(Decimal(1).scaleb(-type_.scale)):
        raise _Refused(f"more than {type_.scale} decimal places")
    return number


def _scalar(value: Any, type_: pa.DataType) -> Any:
    import pyarrow as pa

    try:
        return pa.scalar(value, type=type_).as_py()
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        raise _Refused() from None
