"""Materialization: incremental by write sequence, and never serving a window before it ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

import headwater
from headwater.orchestration.materialize import materialize_view
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


def _materialize_at(store: headwater.FeatureStore, now: datetime) -> int:
    view = store.view("per_window")
    result = materialize_view(
        view,
        registry=store.registry,
        offline=store.offline,
        online=store.online,
        engine=store.engine,
        now_ms=int(now.timestamp() * 1000),
    )
    return result.entities


def test_a_window_is_served_only_once_it_has_ended(tmp_path: Path) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    # User 1's window is [0 s, 3 s), user 2's is [3 s, 6 s).
    times = [base + timedelta(seconds=1), base + timedelta(seconds=4)]
    write_project(tmp_path, DEFINITIONS, data={"data/events.parquet": _events(times, [1, 2])})
    store = headwater.FeatureStore(tmp_path)
    store.apply()
    store.run()
    rows = [{"user_id": 1}, {"user_id": 2}]
    # At 5 s user 2's window is still open: a training set at 5 s could not see it.
    assert _materialize_at(store, base + timedelta(seconds=5)) == 1
    assert store.get_online_features(["per_window:n"], rows).to_dict()["n"] == [1, None]
    # At 6 s it has ended; nothing was rewritten, yet the next materialize serves it.
    assert _materialize_at(store, base + timedelta(seconds=6)) == 1
    assert store.get_online_features(["per_window:n"], rows).to_dict()["n"] == [1, 1]
    assert _materialize_at(store, base + timedelta(seconds=60)) == 0
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
