"""No value from the future, ever: training sets against a brute-force point-in-time join, with
event and entity times finer than a millisecond (microseconds and nanoseconds), on the Delta and
the Parquet offline stores.

A projection keeps its source's microseconds, so with microsecond times it equals the brute
force exactly; a nanosecond feature time is rounded up to the microsecond and a nanosecond
entity time down, so a value can only come later than the brute force's, never earlier. A
lifetime aggregation's row stands at the millisecond after its last event (rounded up), so its
count never includes an event after the entity's time and lags by at most a millisecond.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import headwater
from tests.helpers import write_project

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9
DEFINITIONS = """
    from headwater import Count, Entity, FeatureView, FileSource

    user = Entity("user", join_keys=["user_id"])
    events = FileSource("events", path="data/events.parquet", timestamp_field="ts")
    latest = FeatureView("latest", entity=user, source=events, features={"v": "v"})
    running = FeatureView("running", entity=user, source=events, features=[Count()])
"""
SPAN_NS = 5_000_000  # five milliseconds: many events share a millisecond

times = st.integers(min_value=0, max_value=SPAN_NS)
events = st.lists(st.tuples(st.sampled_from([1, 2]), times), min_size=1, max_size=12)
entities = st.lists(st.tuples(st.sampled_from([1, 2, 3]), times), min_size=1, max_size=8)


def _times(offsets: list[int], unit: str) -> pa.Array:
    """``T0`` + offsets (ns), at the precision of ``unit`` (microseconds: offsets floored)."""
    if unit == "us":
        return pa.array([(T0_NS + o) // 1000 for o in offsets], pa.timestamp("us", tz="UTC"))
    return pa.array([T0_NS + o for o in offsets], pa.timestamp("ns", tz="UTC"))


def _at(offset: int, unit: str) -> int:
    """The offset as the given unit keeps it (ns)."""
    return offset if unit == "ns" else offset // 1000 * 1000


@pytest.mark.parametrize("offline", ["delta", "parquet"])
@settings(max_examples=12, deadline=None)
@given(
    rows=events,
    wanted=entities,
    source_unit=st.sampled_from(["us", "ns"]),
    entity_unit=st.sampled_from(["us", "ns"]),
)
def test_no_value_from_the_future(
    offline: str,
    rows: list[tuple[int, int]],
    wanted: list[tuple[int, int]],
    source_unit: str,
    entity_unit: str,
) -> None:
    source = pa.table(
        {
            "user_id": pa.array([k for k, _ in rows], pa.int64()),
            "ts": _times([t for _, t in rows], source_unit),
            "v": pa.array(range(len(rows)), pa.int64()),  # a row's value is its index
        }
    )
    entity = pa.table(
        {
            "user_id": pa.array([k for k, _ in wanted], pa.int64()),
            "event_timestamp": _times([t for _, t in wanted], entity_unit),
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        root = write_project(
            Path(folder),
            DEFINITIONS,
            offline=offline,
            data={"data/events.parquet": source},
        )
        with headwater.FeatureStore(root) as store:
            store.apply()
            store.run()
            got = (
                store.get_historical_features(entity, ["latest:v", "running:count"])
                .to_arrow()
                .to_pylist()
            )

    event_at = [(k, _at(t, source_unit), index) for index, (k, t) in enumerate(rows)]
    exact = source_unit == entity_unit == "us"
    for (key, offset), row in zip(wanted, got, strict=True):
        t = _at(offset, entity_unit)
        past = [(at, index) for k, at, index in event_at if k == key and at <= t]
        # The brute force: the greatest event time at or before t (ties: the greatest value).
        expected = max(past)[1] if past else None
        if row["v"] is not None:
            assert event_at[row["v"]][1] <= t, f"value {row['v']} is from after {t} ns: {row}"
        if exact:
            assert row["v"] == expected, (row, expected, past)
        count = row["count"] or 0
        assert count <= len(past), f"counted events after {t} ns: {row}, {past}"
        lagging = [at for at, _ in past if at <= t - 1_000_000]
        assert count >= len(lagging), (row, past)


def test_a_sub_millisecond_entity_time_does_not_see_a_later_event(tmp_path: Path) -> None:
    """The case of issue 13: a feature row 400 µs after the entity row."""
    at = T0 + timedelta(microseconds=100)
    source = pa.table(
        {
            "user_id": pa.array([1, 1], pa.int64()),
            "ts": pa.array([T0 - timedelta(seconds=1), at + timedelta(microseconds=400)]),
            "v": pa.array([1, 2], pa.int64()),
        }
    )
    root = write_project(tmp_path, DEFINITIONS, data={"data/events.parquet": source})
    entity = pa.table({"user_id": [1], "event_timestamp": pa.array([at])})
    with headwater.FeatureStore(root) as store:
        store.apply()
        store.run()
        got = (
            store.get_historical_features(entity, ["latest:v", "running:count"])
            .to_arrow()
            .to_pylist()
        )
        stored = store.offline.dataset("latest").to_table().column("event_timestamp").to_pylist()
    assert got == [{"user_id": 1, "event_timestamp": at, "v": 1, "count": 1}]
    assert at + timedelta(microseconds=400) in stored  # the source's precision is kept


def test_a_nanosecond_entity_time_is_rounded_down(tmp_path: Path) -> None:
    """DuckDB's cast rounds 999 ns up to the next microsecond, onto a feature row after the
    entity's time; the join rounds entity times down."""
    feature_at = T0 + timedelta(microseconds=1)
    source = pa.table(
        {
            "user_id": pa.array([1, 1], pa.int64()),
            "ts": pa.array([T0 - timedelta(seconds=1), feature_at]),
            "v": pa.array([1, 2], pa.int64()),
        }
    )
    root = write_project(tmp_path, DEFINITIONS, data={"data/events.parquet": source})
    entity = pa.table(
        {
            "user_id": [1, 1],
            "event_timestamp": pa.array([T0_NS + 999, T0_NS + 1000], pa.timestamp("ns", "UTC")),
        }
    )
    with headwater.FeatureStore(root) as store:
        store.apply()
        store.run()
        got = store.get_historical_features(entity, ["latest:v"]).to_arrow()
    assert got.column("v").to_pylist() == [1, 2]
