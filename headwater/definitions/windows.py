"""Event-time windows.

Windows align to the UTC epoch and are half-open ``[start, end)``. A hopping window of size S
every H covers ``[k*H, k*H + S)`` for every integer k; a tumbling window is a hopping window with
H == S. An aggregation row's ``event_timestamp`` is the window end.

A window's durations are checked by the view that holds it (``validate``), so that the error
names the view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import isqrt
from typing import Any

from headwater.definitions.durations import Duration, format_millis, to_millis
from headwater.errors import DefinitionError


@dataclass(frozen=True, kw_only=True)
class Window:
    """Base of the window kinds; use :class:`Tumbling` or :class:`Hopping`."""

    size: Duration = field(kw_only=False)

    def size_ms(self, what: str = "window") -> int:
        return to_millis(self.size, what=f"{what} size")

    def every_ms(self, what: str = "window") -> int:
        """How far apart windows start, in milliseconds."""
        raise NotImplementedError

    def validate(self, view: str) -> tuple[int, int]:
        """Return ``(size_ms, hop_ms)`` or raise an error naming ``view``."""
        size = self.size_ms(f"view {view!r}: window")
        hop = self.every_ms(f"view {view!r}: window")
        if hop > size:
            raise DefinitionError(
                f"view {view!r}: window hop {format_millis(hop)} is larger than its size "
                f"{format_millis(size)}, so some events would fall in no window",
                fix="make `every` at most `size`",
            )
        if size % hop != 0:
            raise DefinitionError(
                f"view {view!r}: window hop {format_millis(hop)} does not divide its size "
                f"{format_millis(size)}",
                fix=f"choose `every` so that size is a whole multiple of it "
                f"(e.g. every={format_millis(_largest_divisor(size, hop))!r})",
            )
        return size, hop

    def to_spec(self) -> dict[str, Any]:
        raise NotImplementedError


_UNITS_DESCENDING = (604_800_000, 86_400_000, 3_600_000, 60_000, 1_000, 1)  # w, d, h, m, s, ms


def _largest_divisor(size: int, below: int) -> int:
    """The largest divisor of ``size`` under ``below``, preferring whole units of ``below``.

    For a 1h window with a 7m hop this suggests 6m rather than 400s.
    """
    divisors: set[int] = set()
    for low in range(1, isqrt(size) + 1):
        if size % low == 0:
            divisors.update((low, size // low))
    unit = next(u for u in _UNITS_DESCENDING if below % u == 0)
    fitting = [d for d in divisors if d <= below]
    whole = [d for d in fitting if d % unit == 0]
    return max(whole or fitting)


@dataclass(frozen=True, kw_only=True)
class Tumbling(Window):
    """Fixed, non-overlapping windows: ``Tumbling("1d")``."""

    @property
    def every(self) -> Duration:
        """A tumbling window starts where the previous one ends."""
        return self.size

    def every_ms(self, what: str = "window") -> int:
        return to_millis(self.every, what=f"{what} hop")

    def __repr__(self) -> str:
        return f"Tumbling({self.size!r})"

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "tumbling", "size_ms": self.size_ms()}


@dataclass(frozen=True, kw_only=True)
class Hopping(Window):
    """Overlapping windows of ``size`` starting every ``every``.

    Example: ``Hopping(size="1h", every="5m")``.
    """

    every: Duration = field(kw_only=False)

    def every_ms(self, what: str = "window") -> int:
        return to_millis(self.every, what=f"{what} hop")

    def __repr__(self) -> str:
        return f"Hopping(size={self.size!r}, every={self.every!r})"

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "hopping", "size_ms": self.size_ms(), "every_ms": self.every_ms()}
