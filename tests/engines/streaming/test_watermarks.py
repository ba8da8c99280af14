"""The watermark, idle and caught-up rules, without a broker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.engines.streaming.watermarks import (
    PartitionProgress,
    Watermarks,
    caught_up,
    watermark_of,
)

LATENESS = 5_000
IDLE_S = 30.0


def _clock(**partitions: tuple[int | None, float]) -> Watermarks:
    """Watermarks owning partitions ``p<N>=(max_ts, last_event_at)``."""
    clock = Watermarks(LATENESS, IDLE_S)
    for name, (max_ts, seen) in partitions.items():
        clock.own(int(name[1:]), None, max_ts, seen)
    return clock


def test_no_watermark_before_any_event() -> None:
    clock = _clock(p0=(None, 0.0), p1=(None, 0.0))
    assert clock.watermark(now=1.0) is None
    assert clock.closing(1.0, {}) == (None, {})


def test_watermark_is_the_slowest_partition_minus_the_lateness() -> None:
    clock = _clock(p0=(100_000, 0.0), p1=(40_000, 0.0), p2=(None, 0.0))
    assert clock.watermark(now=1.0) == 40_000 - LATENESS


def test_an_idle_partition_stops_holding_the_watermark_back() -> None:
    clock = _clock(p0=(100_000, 100.0), p1=(40_000, 80.0))
    assert clock.watermark(now=80.0 + IDLE_S - 1) == 40_000 - LATENESS  # p1 idle 29 s
    assert clock.watermark(now=80.0 + IDLE_S) == 100_000 - LATENESS  # p1 idle 30 s


def test_when_every_partition_is_idle_the_newest_event_decides() -> None:
    clock = _clock(p0=(100_000, 0.0), p1=(40_000, 0.0))
    assert clock.watermark(now=IDLE_S + 1) == 100_000 - LATENESS


def test_bounded_runs_never_treat_a_partition_as_idle() -> None:
    clock = Watermarks(LATENESS, IDLE_S, ignore_idle=True)
    clock.own(0, None, 100_000, 0.0)
    clock.own(1, None, 40_000, 0.0)
    assert clock.watermark(now=10 * IDLE_S) == 40_000 - LATENESS


def test_closing_moves_partitions_that_saw_events_and_marks_the_moved_ones_dirty() -> None:
    clock = _clock(p0=(100_000, 0.0), p1=(40_000, 0.0), p2=(None, 0.0))
    watermark, moving = clock.closing(1.0, {0: 35_000, 1: None})
    assert watermark == 35_000
    assert moving == {0: 35_000, 1: 35_000}  # p2 never saw an event
    parts = clock.partitions
    assert not parts[0].dirty  # already closed through the watermark
    assert parts[1].dirty
    assert not parts[2].dirty


def test_progress_of_owned_partitions_only() -> None:
    clock = _clock(p0=(None, 0.0))
    clock.consumed({0: 41, 7: 3})
    clock.observe({0: 5_000, 7: 9_000}, now=2.0)
    clock.observe({0: 4_000}, now=3.0)
    part = clock.partitions[0]
    assert (part.next_offset, part.dirty, part.max_ts, part.last_event_at) == (42, True, 5_000, 3.0)
    assert 7 not in clock.partitions
    clock.release(0)
    assert clock.owned() == []


@settings(max_examples=200, deadline=None)
@given(
    partitions=st.lists(
        st.tuples(st.none() | st.integers(-(10**12), 10**12), st.floats(0, 100)),
        min_size=1,
        max_size=6,
    ),
    now=st.floats(0, 200),
    ignore_idle=st.booleans(),
)
def test_watermark_matches_its_definition(
    partitions: list[tuple[int | None, float]], now: float, ignore_idle: bool
) -> None:
    clock = Watermarks(LATENESS, IDLE_S, ignore_idle=ignore_idle)
    for number, (max_ts, seen) in enumerate(partitions):
        clock.own(number, None, max_ts, min(seen, now))
    seen_ts = [(ts, at) for ts, at in partitions if ts is not None]
    active = [ts for ts, at in seen_ts if ignore_idle or now - min(at, now) < IDLE_S]
    if not seen_ts:
        expected = None
    elif active:
        expected = min(active) - LATENESS
    else:
        expected = max(ts for ts, _ in seen_ts) - LATENESS
    assert clock.watermark(now) == expected
    assert watermark_of([ts for ts, _ in partitions], 0) == (
        min(ts for ts, _ in seen_ts) if seen_ts else None
    )


# ---------------------------------------------------------------------- caught up
def _owned(**parts: tuple[int | None, int | None]) -> dict[int, PartitionProgress]:
    """Owned partitions ``p<N>=(next_offset, max_ts)``."""
    return {
        int(name[1:]): PartitionProgress(offset, offset, max_ts, 0.0)
        for name, (offset, max_ts) in parts.items()
    }


def _saved(**parts: tuple[int, int | None, int | None]) -> Any:
    """Committed progress ``p<N>=(next_offset, max_ts, closed)``, as the registry gives it."""
    found = {
        int(name[1:]): SimpleNamespace(next_offset=o, meta={"max_ts": ts, "closed": closed})
        for name, (o, ts, closed) in parts.items()
    }
    return lambda wanted: {p: found[p] for p in wanted if p in found}


def _never(partition: int) -> int:
    raise AssertionError(f"position of partition {partition} asked for")


def test_caught_up_when_every_partition_reached_its_end() -> None:
    ends = {0: 10, 1: 5, 2: 0}  # partition 2 is empty: nothing to reach
    owned = _owned(p0=(10, 1), p1=(5, 1))
    assert caught_up(ends, owned, position=_never, saved=_saved(), lateness_ms=0, stateful=True)


def test_a_partition_behind_its_end_is_not_caught_up_unless_the_consumer_is_past_it() -> None:
    ends = {0: 10}
    behind = _owned(p0=(7, 1))
    kwargs: dict[str, Any] = {"saved": _saved(), "lateness_ms": 0, "stateful": False}
    assert not caught_up(ends, behind, position=lambda p: 7, **kwargs)
    # Transaction markers occupy offsets no message reports: the consumer's position decides.
    assert caught_up(ends, behind, position=lambda p: 10, **kwargs)
    assert not caught_up(ends, _owned(p0=(None, None)), position=lambda p: 0, **kwargs)


def test_other_members_partitions_count_by_their_committed_progress() -> None:
    ends = {0: 10, 1: 8}
    owned = _owned(p0=(10, 50_000))
    kwargs: dict[str, Any] = {"position": _never, "lateness_ms": LATENESS, "stateful": False}
    assert not caught_up(ends, owned, saved=_saved(), **kwargs)  # never committed
    assert not caught_up(ends, owned, saved=_saved(p1=(7, 60_000, None)), **kwargs)
    assert caught_up(ends, owned, saved=_saved(p1=(8, 60_000, None)), **kwargs)


@pytest.mark.parametrize(
    ("closed", "expected"),
    [(None, False), (50_000 - LATENESS - 1, False), (50_000 - LATENESS, True), (60_000, True)],
)
def test_a_finished_partition_of_a_stateful_view_must_be_closed_as_far_as_the_slowest_allows(
    closed: int | None, expected: bool
) -> None:
    ends = {0: 10, 1: 8}
    owned = _owned(p0=(10, 50_000))  # the slowest partition: watermark 50 000 - lateness
    saved = _saved(p1=(8, 70_000, closed))
    assert (
        caught_up(ends, owned, position=_never, saved=saved, lateness_ms=LATENESS, stateful=True)
        is expected
    )


def test_a_finished_partition_without_events_needs_no_closing() -> None:
    ends = {0: 10, 1: 8}
    saved = _saved(p1=(8, None, None))
    assert caught_up(
        ends, _owned(p0=(10, 50_000)), position=_never, saved=saved, lateness_ms=0, stateful=True
    )
    assert caught_up(
        ends, _owned(p0=(10, None)), position=_never, saved=saved, lateness_ms=0, stateful=True
    )
