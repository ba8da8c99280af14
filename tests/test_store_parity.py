"""The same definitions and data give the same results on every pair of offline and online stores.

One scenario — run, materialize, read online, build a training set, rerun, then correct a value
at the same event time with a later created timestamp — runs on Delta and Parquet offline
stores with SQLite and Redis online stores. A reference run (Delta + SQLite) is checked by hand
and every pair must match it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import headwater
from tests.helpers import TS, offline_rows, write_parquet, write_project

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)

DEFINITIONS = """
    from headwater import (
        Avg, Count, CountDistinct, Entity, FeatureView, FileSource, Hopping, Last, Max, Min, Sum,
        Tumbling,
    )

    user = Entity("user", join_keys=["user_id"])
    profiles = FileSource(
        "profiles",
        path="data/profiles.parquet",
        timestamp_field="ts",
        created_timestamp_field="created",
    )
    orders = FileSource(
        "orders",
        path="data/orders.parquet",
        timestamp_field="ts",
        created_timestamp_field="created",
    )

    profile = FeatureView(
        "profile",
        entity=user,
        source=profiles,
        features={"score": "score", "tier": "upper(tier)", "score_x2": "score * 2"},
    )
    orders_1h = FeatureView(
        "orders_1h",
        entity=user,
        source=orders,
        features=[Sum("amount"), Count(), Avg("amount"), Last("amount"), Max("item")],
        window=Tumbling("1h"),
    )
    orders_2h = FeatureView(
        "orders_2h",
        entity=user,
        source=orders,
        features=[Sum("amount"), Count(), CountDistinct("item")],
        window=Hopping(size="2h", every="1h"),
    )
    orders_total = FeatureView(
        "orders_total",
        entity=user,
        source=orders,
        features=[Sum("amount"), Count(), Min("amount"), Last("item")],
    )
"""
VIEWS = ["orders_1h", "orders_2h", "orders_total", "profile"]

# user_id, ts, created, score, tier
PROFILES: list[tuple[Any, ...]] = [
    (1, T0, T0, 100, "a"),
    (1, T0 + HOUR, T0 + HOUR + MIN, 110, "b"),  # ties with the next row; created later: wins
    (1, T0 + HOUR, T0 + HOUR, 105, "c"),
    (2, T0 + 30 * MIN, T0 + 30 * MIN, 200, "a"),
    (3, T0 - timedelta(days=1), None, 300, None),
    (3, T0 + 2 * HOUR, T0 + 2 * HOUR, None, "z"),
]
# user_id, ts, created, amount, item
ORDERS: list[tuple[Any, ...]] = [
    (1, T0 + 5 * MIN, T0 + 5 * MIN, 10, "a"),
    (1, T0 + 50 * MIN, T0 + 50 * MIN, 20, "b"),
    (1, T0 + 50 * MIN, T0 + 51 * MIN, 15, "c"),  # same time, created later: the Last value
    (1, T0 + 65 * MIN, T0 + 65 * MIN, 5, "a"),
    (2, T0 - MS, T0, 7, "c"),
    (2, T0, T0, 3, "c"),
    (3, T0 + 3 * HOUR, T0 + 3 * HOUR, None, "d"),
    (None, T0, T0, 99, "x"),  # no join key: left out
]
# Same event times, new values, later created timestamps.
PROFILE_FIX = (1, T0 + HOUR, T0 + HOUR + 5 * MIN, 111, "b")
ORDER_FIX = (1, T0 + 65 * MIN, T0 + 66 * MIN, 6, "a")

ONLINE_REFS = [
    "profile:score",
    "profile:tier",
    "profile:score_x2",
    "orders_1h:amount_sum",
    "orders_1h:count",
    "orders_1h:amount_avg",
    "orders_1h:amount_last",
    "orders_1h:item_max",
    "orders_2h:amount_sum",
    "orders_2h:count",
    "orders_2h:item_count_distinct",
    "orders_total:amount_sum",
    "orders_total:count",
    "orders_total:amount_min",
    "orders_total:item_last",
]
ENTITY_ROWS = [{"user_id": 1}, {"user_id": 2}, {"user_id": 3}, {"user_id": 42}]
TRAINING_ROWS = [
    (1, T0 + HOUR),
    (1, T0 + HOUR - MS),
    (2, T0),
    (3, T0 + 10 * HOUR),
    (42, T0),
    (1, T0 + 3 * HOUR),
]


def profiles_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([r[0] for r in rows], pa.int64()),
            "ts": pa.array([r[1] for r in rows], TS),
            "created": pa.array([r[2] for r in rows], TS),
            "score": pa.array([r[3] for r in rows], pa.int64()),
            "tier": pa.array([r[4] for r in rows], pa.string()),
        }
    )


def orders_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([r[0] for r in rows], pa.int64()),
            "ts": pa.array([r[1] for r in rows], TS),
            "created": pa.array([r[2] for r in rows], TS),
            "amount": pa.array([r[3] for r in rows], pa.int64()),
            "item": pa.array([r[4] for r in rows], pa.string()),
        }
    )


def replaced(rows: list[tuple[Any, ...]], fix: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """``rows`` with the row of ``fix``'s key and event time that ``fix`` corrects swapped."""
    target = next(i for i, r in enumerate(rows) if r[:2] == fix[:2] and r[4] == fix[4])
    return [fix if i == target else r for i, r in enumerate(rows)]


@dataclass
class Outcome:
    """Everything the scenario observed, in comparable plain-Python form."""

    offline: dict[str, list[dict[str, Any]]]
    online: dict[str, list[Any]]
    training: list[dict[str, Any]]
    rerun_changes: dict[str, tuple[int, int, int]]
    offline_before_rerun: dict[str, list[dict[str, Any]]]
    offline_after_rerun: dict[str, list[dict[str, Any]]]
    corrected_offline: dict[str, list[dict[str, Any]]]
    corrected_online: dict[str, list[Any]]
    corrected_training: list[dict[str, Any]]


def run_scenario(root: Path, offline: str, online: dict[str, Any]) -> Outcome:
    write_project(
        root,
        DEFINITIONS,
        offline=offline,
        online=online,
        data={
            "data/profiles.parquet": profiles_table(PROFILES),
            "data/orders.parquet": orders_table(ORDERS),
        },
    )
    entity_df = pa.table(
        {
            "user_id": pa.array([r[0] for r in TRAINING_ROWS], pa.int64()),
            "event_timestamp": pa.array([r[1] for r in TRAINING_ROWS], TS),
        }
    )
    store = headwater.FeatureStore(root)
    try:
        store.apply()
        store.run()
        store.materialize()

        def snapshot(*, keep_storage: bool = False) -> dict[str, list[dict[str, Any]]]:
            return {v: offline_rows(store, v, keep_storage=keep_storage) for v in VIEWS}

        def online_values() -> dict[str, list[Any]]:
            response = store.get_online_features(
                ONLINE_REFS, ENTITY_ROWS, full_feature_names=True
            ).to_dict()
            return dict(sorted(response.items()))

        def training() -> list[dict[str, Any]]:
            job = store.get_historical_features(entity_df, ONLINE_REFS, full_feature_names=True)
            return [dict(sorted(row.items())) for row in job.to_arrow().to_pylist()]

        first = (snapshot(), online_values(), training())
        before_rerun = snapshot(keep_storage=True)
        rerun = {r.view: (r.inserted, r.updated, r.deleted) for r in store.run()}
        after_rerun = snapshot(keep_storage=True)

        write_parquet(
            root, "data/profiles.parquet", profiles_table(replaced(PROFILES, PROFILE_FIX))
        )
        write_parquet(root, "data/orders.parquet", orders_table(replaced(ORDERS, ORDER_FIX)))
        store.run()
        store.materialize()
        return Outcome(
            offline=first[0],
            online=first[1],
            training=first[2],
            rerun_changes=rerun,
            offline_before_rerun=before_rerun,
            offline_after_rerun=after_rerun,
            corrected_offline=snapshot(),
            corrected_online=online_values(),
            corrected_training=training(),
        )
    finally:
        store.close()


REFERENCE = ("delta", "sqlite")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    offline, online = REFERENCE
    return run_scenario(tmp_path_factory.mktemp("reference"), offline, {"type": online})


def _where(rows: list[dict[str, Any]], user_id: int, at: datetime) -> dict[str, Any]:
    matches = [r for r in rows if r["user_id"] == user_id and r["event_timestamp"] == at]
    assert len(matches) == 1, (user_id, at, matches)
    return matches[0]


def test_reference_values_by_hand(reference: Outcome) -> None:
    offline = reference.offline
    assert len(offline["profile"]) == 5  # six source rows, two share (user 1, T0 + 1h)
    tie = _where(offline["profile"], 1, T0 + HOUR)
    assert (tie["score"], tie["tier"], tie["score_x2"]) == (110, "B", 220)
    assert tie["created_timestamp"] == T0 + HOUR + MIN

    hour = _where(offline["orders_1h"], 1, T0 + HOUR)
    assert (hour["amount_sum"], hour["count"], hour["amount_avg"]) == (45, 3, 15.0)
    assert (hour["amount_last"], hour["item_max"]) == (15, "c")
    assert _where(offline["orders_1h"], 2, T0)["amount_sum"] == 7  # 1 ms before noon
    empty = _where(offline["orders_1h"], 3, T0 + 4 * HOUR)
    assert (empty["amount_sum"], empty["count"], empty["amount_last"]) == (None, 1, None)
    assert all(r["user_id"] is not None for r in offline["orders_1h"])

    hopping = {(r["user_id"], r["event_timestamp"]): r["amount_sum"] for r in offline["orders_2h"]}
    assert {k: v for k, v in hopping.items() if k[0] in (1, 2)} == {
        (1, T0 + HOUR): 45,
        (1, T0 + 2 * HOUR): 50,
        (1, T0 + 3 * HOUR): 5,
        (2, T0): 7,
        (2, T0 + HOUR): 10,
        (2, T0 + 2 * HOUR): 3,
    }
    assert _where(offline["orders_2h"], 1, T0 + 2 * HOUR)["item_count_distinct"] == 3

    total = _where(offline["orders_total"], 1, T0 + 65 * MIN)
    assert (total["amount_sum"], total["count"], total["amount_min"], total["item_last"]) == (
        50,
        4,
        5,
        "a",
    )
    user_2 = sorted(
        (r["event_timestamp"], r["amount_sum"])
        for r in offline["orders_total"]
        if r["user_id"] == 2
    )
    assert user_2 == [(T0 - MS, 7), (T0, 10)]

    online = reference.online
    assert online["user_id"] == [1, 2, 3, 42]
    assert online["profile__score"] == [110, 200, None, None]
    assert online["profile__tier"] == ["B", "A", "Z", None]
    assert online["orders_1h__amount_sum"] == [5, 3, None, None]
    assert online["orders_1h__count"] == [1, 1, 1, None]
    assert online["orders_2h__amount_sum"] == [5, 3, None, None]
    assert online["orders_total__amount_sum"] == [50, 10, None, None]
    assert online["orders_total__item_last"] == ["a", "c", "d", None]

    training = reference.training
    assert [r["profile__score"] for r in training] == [110, 100, None, None, None, 110]
    assert [r["orders_1h__amount_sum"] for r in training] == [45, None, 7, None, None, 5]
    assert [r["orders_2h__amount_sum"] for r in training] == [45, None, 7, None, None, 5]
    assert [r["orders_total__amount_sum"] for r in training] == [45, 45, 10, None, None, 50]
    assert [r["orders_total__count"] for r in training] == [3, 3, 2, 1, None, 4]


def test_reference_correction_by_hand(reference: Outcome) -> None:
    corrected = _where(reference.corrected_offline["profile"], 1, T0 + HOUR)
    assert (corrected["score"], corrected["created_timestamp"]) == (111, T0 + HOUR + 5 * MIN)
    assert _where(reference.corrected_offline["orders_1h"], 1, T0 + 2 * HOUR)["amount_sum"] == 6
    assert reference.corrected_online["profile__score"][0] == 111
    assert reference.corrected_online["profile__score_x2"][0] == 222
    assert reference.corrected_online["orders_1h__amount_sum"][0] == 6
    assert reference.corrected_online["orders_total__amount_sum"][0] == 51
    assert reference.corrected_training[0]["profile__score"] == 111
    assert reference.corrected_training[-1]["orders_total__amount_sum"] == 51
    # Nothing else moved.
    for view in VIEWS:
        before = {_key(r): r for r in reference.offline[view]}
        after = {_key(r): r for r in reference.corrected_offline[view]}
        assert before.keys() == after.keys()
        changed = sorted(k for k in before if before[k] != after[k])
        assert all(k[0] == 1 and k[1] >= T0 + HOUR for k in changed), (view, changed)


def _key(row: dict[str, Any]) -> tuple[Any, Any]:
    return (row["user_id"], row["event_timestamp"])


COMBINATIONS = [
    pytest.param("delta", "sqlite", id="delta-sqlite"),
    pytest.param("parquet", "sqlite", id="parquet-sqlite"),
    pytest.param("delta", "redis", id="delta-redis", marks=pytest.mark.redis),
    pytest.param("parquet", "redis", id="parquet-redis", marks=pytest.mark.redis),
]


@pytest.mark.parametrize(("offline", "online"), COMBINATIONS)
def test_every_store_pair_gives_the_same_results(
    offline: str,
    online: str,
    reference: Outcome,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    if (offline, online) == REFERENCE:
        outcome = reference  # already run; its own invariants are still checked below
    else:
        online_config: dict[str, Any] = {"type": "sqlite"}
        if online == "redis":
            online_config = {
                "type": "redis",
                "url": request.getfixturevalue("redis_url"),
                "key_prefix": request.getfixturevalue("redis_prefix"),
            }
        outcome = run_scenario(tmp_path, offline, online_config)

    assert outcome.offline == reference.offline
    assert outcome.online == reference.online
    assert outcome.training == reference.training
    # A rerun over unchanged sources changes nothing, not even the write sequence numbers.
    assert outcome.rerun_changes == {view: (0, 0, 0) for view in VIEWS}
    assert outcome.offline_after_rerun == outcome.offline_before_rerun
    assert outcome.corrected_offline == reference.corrected_offline
    assert outcome.corrected_online == reference.corrected_online
    assert outcome.corrected_training == reference.corrected_training
