"""Materialization: incremental by write sequence, and never serving a window before it ends."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

import headwater
from tests.helpers import TS, write_parquet, write_project

DEFINITIONS = """
from headwater import Count, Entity, FeatureView, FileSource, Tumbling

user = Entity("user", join_keys=["user_id"])
events = FileSource("events", path="data/events.parquet", timestamp_field="ts")
per_window = FeatureView("per_window", entity=user, source=events, window=Tumbling("3s"),
                         features=[Count(name="n")])
"""


def _events(times: list[datetime], users: list[int]) -> pa.Table:
    return pa.table({"user_id": pa.array(users, pa.int64()), "ts": pa.array(times, TS)})


def test_a_window_is_served_only_once_it_has_ended(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    past = now - timedelta(minutes=5)
    write_project(tmp_path, DEFINITIONS, data={"data/events.parquet": _events([past, now], [1, 2])})
    store = headwater.FeatureStore(tmp_path)
    store.apply()
    store.run()
    store.materialize()
    first = store.get_online_features(["per_window:n"], [{"user_id": 1}, {"user_id": 2}])
    # User 2's only window ends up to 3 s from now: a training set at `now` could not see it.
    assert first.to_dict()["n"] == [1, None]

    time.sleep(3.2)
    second = store.materialize()
    assert second[0].entities == 1  # nothing was rewritten; user 2's window became due
    after = store.get_online_features(["per_window:n"], [{"user_id": 1}, {"user_id": 2}])
    assert after.to_dict()["n"] == [1, 1]
    store.close()


def test_materialize_moves_only_rows_changed_since_the_last_mark(tmp_path: Path) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    write_project(
        tmp_path, DEFINITIONS, data={"data/events.parquet": _events([base, base], [1, 2])}
    )
    store = headwater.FeatureStore(tmp_path)
    store.apply()
    store.run()
    assert store.materialize()[0].entities == 2
    assert store.materialize()[0].entities == 0  # nothing new
    # A new event for user 3 only: one entity moves.
    write_parquet(
        tmp_path,
        "data/events.parquet",
        _events([base, base, base + timedelta(seconds=10)], [1, 2, 3]),
    )
    store.run()
    assert store.materialize()[0].entities == 1
    full = store.materialize(full_refresh=True)[0]
    assert full.entities == 3
    values = store.get_online_features(["per_window:n"], [{"user_id": u} for u in (1, 2, 3)])
    assert values.to_dict()["n"] == [1, 1, 1]
    store.close()
