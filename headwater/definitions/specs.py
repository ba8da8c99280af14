"""JSON-able values for ``to_spec()``: what the registry stores and compares at ``apply``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any


def jsonable(value: Any, *, iso_dates: bool = True) -> Any:
    """``value`` with mappings, lists and tuples walked and other values made JSON-able.

    Plain JSON values are kept; dates and datetimes become ISO-8601 text (with ``iso_dates``;
    sources have always recorded ``str(value)``, and their specs must not change); anything else
    becomes ``str(value)``.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, iso_dates=iso_dates) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, iso_dates=iso_dates) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if iso_dates and isinstance(value, date):
        return value.isoformat()
    return str(value)
