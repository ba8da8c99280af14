"""Durations: ``"5m"``, ``"1h"``, ``"1d"``, ``"250ms"`` or :class:`datetime.timedelta`."""

from __future__ import annotations

import re
from datetime import timedelta

from headwater.errors import DefinitionError

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PATTERN = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")

Duration = str | timedelta | int


def to_millis(value: Duration, *, what: str = "duration") -> int:
    """Return ``value`` as whole milliseconds.

    Args:
        value: ``"90s"``, ``"5m"``, ``"1h"``, ``"1d"``, ``"1w"``, a ``timedelta``, or an int of ms.
        what: the name used in error messages (e.g. ``"window size of view 'x'"``).

    Raises:
        DefinitionError: the value cannot be read as a positive duration.
    """
    if isinstance(value, bool):
        raise DefinitionError(f"{what}: {value!r} is not a duration", fix='use e.g. "5m" or "1h"')
    if isinstance(value, timedelta):
        millis = value // timedelta(milliseconds=1)
        if timedelta(milliseconds=millis) != value:
            raise DefinitionError(
                f"{what}: {value!r} is finer than a millisecond",
                fix="use a whole number of milliseconds",
            )
    elif isinstance(value, int):
        millis = value
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if not match:
            raise DefinitionError(
                f"{what}: {value!r} is not a duration",
                fix='write a number and a unit (ms, s, m, h, d, w), e.g. "5m", "1h", "1d"',
            )
        millis = int(match.group(1)) * _UNITS_MS[match.group(2)]
    else:
        raise DefinitionError(f"{what}: {value!r} is not a duration", fix='use e.g. "5m"')
    if millis <= 0:
        raise DefinitionError(f"{what}: {value!r} must be positive", fix='use e.g. "5m"')
    return millis


def format_millis(millis: int) -> str:
    """Render milliseconds with the largest unit that divides them (``3600000 -> "1h"``)."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"
