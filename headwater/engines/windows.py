"""Window arithmetic on integer milliseconds, shared by every engine.

A window of size S every H is ``[k*H, k*H + S)``; the windows holding an event at ``ts`` start
at ``last - i*H`` for ``i`` in ``0 .. S/H - 1`` where ``last = ts - floormod(ts, H)``. Python's
``%`` is already a floor modulo, so pre-epoch timestamps work unchanged.
"""

from __future__ import annotations


def window_start(ts_ms: int, hop_ms: int) -> int:
    """Start of the last window (of hop ``hop_ms``) that contains ``ts_ms``."""
    return ts_ms - ts_ms % hop_ms


def window_starts(ts_ms: int, size_ms: int, hop_ms: int) -> list[int]:
    """Starts of every window of size ``size_ms`` every ``hop_ms`` containing ``ts_ms``."""
    last = window_start(ts_ms, hop_ms)
    return [last - i * hop_ms for i in range(size_ms // hop_ms)]


def floormod_sql(expr: str, hop_ms: int) -> str:
    """SQL for ``floormod(expr, hop)`` (DuckDB's ``%`` truncates toward zero)."""
    return f"((({expr}) % {hop_ms}) + {hop_ms}) % {hop_ms}"
