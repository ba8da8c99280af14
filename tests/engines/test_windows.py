"""Window aggregations of the DuckDB engine against a brute-force oracle written in plain Python.

The oracle follows the definition, not the engine's formula: an event at ``t`` (milliseconds,
floored) belongs to every window ``[k*H, k*H + S)`` with ``k*H <= t < k*H + S``, found by
scanning ``k``; a window's row has ``event_timestamp`` = its end; NULL inputs are ignored; ``Last``
keeps the value of the greatest ``(event time, created time, value)``; a lifetime view has one
row per (entity, distinct event time) aggregating every event up to that time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.config import parse_config
from headwater.definitions import (
    Avg,
    Count,
    CountDistinct,
    Entity,
    FeatureView,
    FileSource,
    Hopping,
    Last,
    Max,
    Min,
    Sum,
    Tumbling,
    Window,
)
from headwater.engines.duckdb import DuckDBEngine
from headwater.engines.windows import window_start, window_starts
from tests.helpers import TS

if TYPE_CHECKING:
    from collections.abc import Iterator


USER = Entity("user", join_keys=["user_id"])
SOURCE = FileSource(
    "events", path="events.parquet", timestamp_field="ts", created_timestamp_field="cts"
)
AGGREGATIONS = [
    Sum("amount"),
    Count(),
    Count("amount", name="amount_count"),
    Avg("amount"),
    Min("amount"),
    Max("amount"),
    Min("page"),
    Max("page"),
    CountDistinct("amount"),
    CountDistinct("page"),
    Last("amount"),
    Last("page"),
]
FLOATS = {"amount_avg"}
Rows = dict[tuple[int, int], dict[str, Any]]
"""Output rows by ``(user_id, event_timestamp in ms)``."""
NO_CREATED = -math.inf


@dataclass(frozen=True)
class Event:
    user_id: int | None
    ts_us: int | None
    cts_ms: int | None
    amount: int | None
    page: str | None

    @property
    def ts_ms(self) -> int:
        assert self.ts_us is not None
        return self.ts_us // 1000  # floor, also before the epoch


# ---------------------------------------------------------------------- oracle
def _last(events: list[Event], column: str) -> Any:
    candidates = [
        (e.ts_ms, NO_CREATED if e.cts_ms is None else e.cts_ms, getattr(e, column))
        for e in events
        if getattr(e, column) is not None
    ]
    return max(candidates)[2] if candidates else None


def aggregate(events: list[Event]) -> dict[str, Any]:
    """Every aggregation of :data:`AGGREGATIONS` over ``events``, by feature name."""
    amounts = [e.amount for e in events if e.amount is not None]
    pages = [e.page for e in events if e.page is not None]
    return {
        "amount_sum": sum(amounts) if amounts else None,
        "count": len(events),
        "amount_count": len(amounts),
        "amount_avg": sum(amounts) / len(amounts) if amounts else None,
        "amount_min": min(amounts, default=None),
        "amount_max": max(amounts, default=None),
        "page_min": min(pages, default=None),
        "page_max": max(pages, default=None),
        "amount_count_distinct": len(set(amounts)),
        "page_count_distinct": len(set(pages)),
        "amount_last": _last(events, "amount"),
        "page_last": _last(events, "page"),
    }


def placeable(events: list[Event]) -> list[Event]:
    return [e for e in events if e.user_id is not None and e.ts_us is not None]


def windowed_oracle(events: list[Event], size: int, hop: int) -> Rows:
    """``{(user_id, window end ms): features}`` by scanning the windows around each event."""
    members: dict[tuple[int, int], list[Event]] = defaultdict(list)
    for event in placeable(events):
        t = event.ts_ms
        first = (t - size) // hop - 1  # safely before the first window holding t
        for k in range(first, t // hop + 2):
            start = k * hop
            if start <= t < start + size:
                assert event.user_id is not None
                members[(event.user_id, start + size)].append(event)
    return {key: aggregate(group) for key, group in members.items()}


def lifetime_oracle(events: list[Event]) -> Rows:
    """``{(user_id, event time ms): features over the user's events up to that time}``, the
    times rounded up to the millisecond (a row never stands before an event it includes)."""
    by_user: dict[int, list[Event]] = defaultdict(list)
    for event in placeable(events):
        assert event.ts_us is not None
        up = -(-event.ts_us // 1000) * 1000
        event = Event(event.user_id, up, event.cts_ms, event.amount, event.page)
        assert event.user_id is not None
        by_user[event.user_id].append(event)
    result = {}
    for user_id, group in by_user.items():
        for t in {e.ts_ms for e in group}:
            result[(user_id, t)] = aggregate([e for e in group if e.ts_ms <= t])
    return result


# ---------------------------------------------------------------------- engine
class Compute:
    """Runs the engine on one connection; each call re-registers the source as ``src``."""

    def __init__(self, engine: DuckDBEngine) -> None:
        self.engine = engine
        self.con = engine.connect()

    def __call__(self, window: Window | None, table: pa.Table) -> Rows:
        """``{(user_id, event_timestamp ms): features}``, asserting one row per key."""
        view = FeatureView("v", entity=USER, source=SOURCE, features=AGGREGATIONS, window=window)
        self.con.register("src", table)
        result = self.engine.compute(self.con, view, "src").read_all()
        assert result.schema.field("event_timestamp").type == TS
        micros = pc.cast(result.column("event_timestamp"), pa.int64()).to_pylist()
        rows: Rows = {}
        features = result.drop_columns(["event_timestamp"]).to_pylist()
        for row, us in zip(features, micros, strict=True):
            assert us % 1000 == 0
            key = (row.pop("user_id"), us // 1000)
            assert key not in rows, f"two rows for {key}"
            rows[key] = row
        return rows


@pytest.fixture(scope="module")
def compute(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compute]:
    engine = DuckDBEngine(parse_config({"project": "t"}, tmp_path_factory.mktemp("engine")))
    runner = Compute(engine)
    yield runner
    runner.con.close()


def events_table(events: list[Event], ts_type: pa.DataType = TS) -> pa.Table:
    ts: list[int | None] = [e.ts_us for e in events]
    if pa.types.is_integer(ts_type):
        ts = [None if v is None else v // 1000 for v in ts]
    elif ts_type != TS:
        raise AssertionError(f"unsupported test timestamp type {ts_type}")
    return pa.table(
        {
            "user_id": pa.array([e.user_id for e in events], pa.int64()),
            "ts": pa.array(ts, ts_type),
            "cts": pa.array([None if e.cts_ms is None else e.cts_ms * 1000 for e in events], TS),
            "amount": pa.array([e.amount for e in events], pa.int64()),
            "page": pa.array([e.page for e in events], pa.string()),
        }
    )


def assert_same(actual: Rows, expected: Rows) -> None:
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        got = actual[key]
        assert set(got) == set(want), key
        for name, value in want.items():
            if name in FLOATS and value is not None and got[name] is not None:
                assert math.isclose(got[name], value, rel_tol=1e-12, abs_tol=1e-12), (key, name)
            else:
                assert got[name] == value, (key, name, got[name], value)


# ---------------------------------------------------------------------- generated events
BASES_MS = [0, 1_709_294_400_000, -315_619_200_000]  # epoch, 2024-03-01 12:00, 1960-01-01
SPAN_MS = 12_000


def offsets_ms() -> st.SearchStrategy[int]:
    """Anywhere in the span, or on (or one millisecond off) a multiple of a window hop."""
    anywhere = st.integers(-SPAN_MS, SPAN_MS)
    boundary = st.sampled_from([1_000, 2_000, 3_000, 4_000, 6_000]).flatmap(
        lambda step: st.builds(
            lambda k, nudge: k * step + nudge,
            st.integers(-SPAN_MS // step, SPAN_MS // step),
            st.sampled_from([0, 0, 0, -1, 1]),
        )
    )
    return st.one_of(anywhere, boundary)


@st.composite
def event_lists(draw: st.DrawFn) -> list[Event]:
    base = draw(st.sampled_from(BASES_MS))
    event = st.builds(
        Event,
        user_id=st.one_of(st.integers(1, 3), st.integers(1, 3), st.none()),
        ts_us=st.one_of(
            st.builds(
                lambda off, sub: (base + off) * 1_000 + sub,
                offsets_ms(),
                st.sampled_from([0, 0, 0, 0, 1, 500, 999]),
            ),
            st.none(),
        ),
        cts_ms=st.one_of(st.integers(0, 3), st.none()),
        amount=st.one_of(st.integers(-5, 20), st.none()),
        page=st.one_of(st.sampled_from(["home", "cart", "Home", "a", "b"]), st.none()),
    )
    return draw(st.lists(event, max_size=30))


WINDOWS = [
    pytest.param(Tumbling(1_000), id="tumbling-1s"),
    pytest.param(Tumbling("3s"), id="tumbling-3s"),
    pytest.param(Hopping(size=2_000, every=1_000), id="hopping-2s-1s"),
    pytest.param(Hopping(size="3s", every="1s"), id="hopping-3s-1s"),
    pytest.param(Hopping(size=6_000, every=2_000), id="hopping-6s-2s"),
    pytest.param(Hopping(size=4_000, every=4_000), id="hopping-4s-4s"),
]


@pytest.mark.parametrize("window", WINDOWS)
@settings(max_examples=40, deadline=None)
@given(events=event_lists())
def test_windows_match_oracle(compute: Compute, window: Window, events: list[Event]) -> None:
    size, hop = window.validate("v")
    assert_same(compute(window, events_table(events)), windowed_oracle(events, size, hop))


@settings(max_examples=40, deadline=None)
@given(events=event_lists())
def test_lifetime_matches_oracle(compute: Compute, events: list[Event]) -> None:
    assert_same(compute(None, events_table(events)), lifetime_oracle(events))


@pytest.mark.parametrize(
    "window", [Hopping(size="3s", every="1s"), None], ids=["hopping", "lifetime"]
)
@settings(max_examples=10, deadline=None)
@given(events=event_lists())
def test_integer_millisecond_times_match_timestamps(
    compute: Compute, window: Window | None, events: list[Event]
) -> None:
    events = [
        e if e.ts_us is None else Event(e.user_id, e.ts_ms * 1000, e.cts_ms, e.amount, e.page)
        for e in events
    ]
    as_timestamps = compute(window, events_table(events))
    as_integers = compute(window, events_table(events, pa.int64()))
    assert as_integers == as_timestamps


# ---------------------------------------------------------------------- explicit examples
def one(user_id: int, ts_us: int, amount: int | None = 1, cts_ms: int | None = None) -> Event:
    return Event(user_id, ts_us, cts_ms, amount, "p")


def counts(rows: Rows) -> dict[tuple[int, int], int]:
    return {key: row["count"] for key, row in rows.items()}


def test_event_at_window_start_goes_to_the_window_starting_there(compute: Compute) -> None:
    rows = compute(Tumbling("1h"), events_table([one(1, 3_600_000_000)]))
    assert counts(rows) == {(1, 7_200_000): 1}


def test_event_one_millisecond_before_the_epoch(compute: Compute) -> None:
    rows = compute(Tumbling("1h"), events_table([one(1, -1_000), one(1, 0)]))
    assert counts(rows) == {(1, 0): 1, (1, 3_600_000): 1}
    rows = compute(None, events_table([one(1, -1_000, 5), one(1, 0, 7)]))
    assert {k: r["amount_sum"] for k, r in rows.items()} == {(1, -1): 5, (1, 0): 12}


def test_sub_millisecond_event_before_a_window_end_stays_in_its_window(
    compute: Compute,
) -> None:
    # 00:59:59.9995 and 23:59:59.999999 the day before the epoch: times floor to milliseconds.
    events = [one(1, 3_600_000_000 - 500), one(2, -1), one(3, -500)]
    rows = compute(Tumbling("1h"), events_table(events))
    assert counts(rows) == {(1, 3_600_000): 1, (2, 0): 1, (3, 0): 1}


def test_nanosecond_times_floor_to_milliseconds(compute: Compute) -> None:
    table = events_table([one(1, 0), one(2, 0)]).set_column(
        1, "ts", pa.array([3_600_000_000_000 - 500, -1], pa.timestamp("ns", tz="UTC"))
    )
    assert counts(compute(Tumbling("1h"), table)) == {(1, 3_600_000): 1, (2, 0): 1}


def test_a_lifetime_row_never_stands_before_its_events(compute: Compute) -> None:
    # 400 µs after a millisecond: the running count including it stands at the next one.
    rows = compute(None, events_table([one(1, 1_000), one(1, 1_400), one(1, -600)]))
    assert counts(rows) == {(1, 0): 1, (1, 1): 2, (1, 2): 3}


def test_hopping_event_belongs_to_size_over_every_windows(compute: Compute) -> None:
    rows = compute(Hopping(size="1h", every="15m"), events_table([one(1, 2_500_000_000)]))
    # 2500 s lies in the hour-long windows starting at 0, 900, 1800 and -900 seconds.
    assert counts(rows) == {(1, end * 1000): 1 for end in (2_700, 3_600, 4_500, 5_400)}
    rows = compute(Hopping(size="1h", every="15m"), events_table([one(1, -1_000)]))
    assert counts(rows) == {(1, end * 1000): 1 for end in (0, 900, 1_800, 2_700)}


def test_last_breaks_ties_by_created_time_then_value(compute: Compute) -> None:
    events = [one(1, 5_000, 1, cts_ms=9), one(1, 5_000, 2, cts_ms=8), one(1, 4_000, 3, cts_ms=99)]
    events += [one(2, 5_000, 4), one(2, 5_000, 3, cts_ms=0), one(2, 5_000, None, cts_ms=50)]
    events += [one(3, 5_000, 4), one(3, 5_300, 3)]  # same millisecond: the greater value
    rows = compute(Tumbling("1m"), events_table(events))
    assert {k: r["amount_last"] for k, r in rows.items()} == {
        (1, 60_000): 1,
        (2, 60_000): 3,
        (3, 60_000): 4,
    }


def test_nulls_are_ignored_and_windows_of_only_nulls_still_exist(compute: Compute) -> None:
    events = [one(1, 0, None), Event(1, 10_000, None, None, None), Event(None, 0, None, 5, "x")]
    events.append(Event(1, None, None, 5, "x"))
    rows = compute(Tumbling("1m"), events_table(events))
    assert list(rows) == [(1, 60_000)]
    row = rows[(1, 60_000)]
    assert (row["count"], row["amount_count"], row["amount_sum"], row["amount_avg"]) == (
        2,
        0,
        None,
        None,
    )
    assert (row["amount_last"], row["page_last"], row["page_count_distinct"]) == (None, "p", 1)


@settings(max_examples=200, deadline=None)
@given(
    ts=st.one_of(st.integers(-(10**13), 10**13), st.integers(-50, 50).map(lambda k: k * 6_000)),
    hop_and_hops=st.tuples(st.sampled_from([1, 7, 1_000, 60_000, 3_600_000]), st.integers(1, 6)),
)
def test_python_window_arithmetic_matches_the_definition(
    ts: int, hop_and_hops: tuple[int, int]
) -> None:
    hop, hops = hop_and_hops
    size = hop * hops
    expected = {
        k * hop
        for k in range((ts - size) // hop - 1, ts // hop + 2)
        if k * hop <= ts < k * hop + size
    }
    assert set(window_starts(ts, size, hop)) == expected
    assert len(window_starts(ts, size, hop)) == hops
    assert window_start(ts, hop) == max(expected)


def test_oracle_sanity() -> None:
    events = [one(1, 2_500_000), one(1, 3_000_000, 4)]
    assert windowed_oracle(events, 3_000, 1_000) == {
        (1, 3_000): aggregate(events[:1]),
        (1, 4_000): aggregate(events),
        (1, 5_000): aggregate(events),
        (1, 6_000): aggregate(events[1:]),
    }
    assert aggregate(events)["amount_sum"] == 5


def test_empty_source_gives_no_rows(compute: Compute) -> None:
    for window in (Tumbling("1s"), Hopping(size="2s", every="1s"), None):
        assert compute(window, events_table([])) == {}
