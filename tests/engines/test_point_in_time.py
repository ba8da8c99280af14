"""Point-in-time joins through ``FeatureStore.get_historical_features`` (Feast's semantics).

For an entity row at ``t`` a view contributes the row with the greatest ``event_timestamp <= t``
(and ``>= t - ttl`` when the view has a ttl, both ends inclusive); ties at one event time go to
the greatest created timestamp; no match gives nulls and keeps the row; every entity row is kept,
in input order.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import headwater
from headwater.errors import DefinitionError
from tests.helpers import TS, write_project

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)

DEFINITIONS = """
    from headwater import Count, Entity, FeatureView, FileSource, Sum, Tumbling

    user = Entity("user", join_keys=["user_id"])
    merchant = Entity("merchant", join_keys=["merchant_id", "country"])

    profiles = FileSource(
        "profiles",
        path="data/profiles.parquet",
        timestamp_field="ts",
        created_timestamp_field="created",
    )
    merchants = FileSource("merchants", path="data/merchants.parquet", timestamp_field="ts")
    orders = FileSource("orders", path="data/orders.parquet", timestamp_field="ts")

    profile = FeatureView(
        "profile", entity=user, source=profiles, features={"score": "score", "tier": "tier"}
    )
    profile_recent = FeatureView(
        "profile_recent", entity=user, source=profiles, features={"score": "score"}, ttl="1h"
    )
    merchant_risk = FeatureView(
        "merchant_risk", entity=merchant, source=merchants, features={"risk": "risk"}
    )
    user_hourly = FeatureView(
        "user_hourly",
        entity=user,
        source=orders,
        features=[Sum("amount"), Count()],
        window=Tumbling("1h"),
    )
"""

PROFILES = [
    # user_id, ts, created, score, tier
    (1, T0, T0, 10, "gold"),
    (1, T0 + 2 * HOUR, T0 + 2 * HOUR, 12, "silver"),
    # Same key and event time: the greatest created timestamp wins, whatever the file order.
    (2, T0, T0 + 2 * MIN, 21, "b"),
    (2, T0, T0 + MIN, 20, "a"),
    (5, T0, T0 + MIN, 50, "a"),
    (5, T0, T0 + 2 * MIN, 51, "b"),
    (4, T0, None, 40, "a"),
    (4, T0, T0, 41, "b"),
    (3, T0, T0, 30, "x"),
    (3, T0 + MS, T0, 31, "y"),
]
MERCHANTS = [("m1", "FR", T0, 0.1), ("m1", "DE", T0, 0.9), ("m1", "FR", T0 + 30 * MIN, 0.2)]
ORDERS = [(1, T0 + 10 * MIN, 5), (1, T0 + 20 * MIN, 7), (1, T0 + 70 * MIN, 1)]


def _columns(rows: list[tuple[Any, ...]], names: list[str]) -> dict[str, list[Any]]:
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[headwater.FeatureStore]:
    root: Path = tmp_path_factory.mktemp("pit")
    profiles = _columns(PROFILES, ["user_id", "ts", "created", "score", "tier"])
    merchants = _columns(MERCHANTS, ["merchant_id", "country", "ts", "risk"])
    orders = _columns(ORDERS, ["user_id", "ts", "amount"])
    write_project(
        root,
        DEFINITIONS,
        data={
            "data/profiles.parquet": pa.table(
                {
                    "user_id": pa.array(profiles["user_id"], pa.int64()),
                    "ts": pa.array(profiles["ts"], TS),
                    "created": pa.array(profiles["created"], TS),
                    "score": pa.array(profiles["score"], pa.int64()),
                    "tier": pa.array(profiles["tier"], pa.string()),
                }
            ),
            "data/merchants.parquet": pa.table(
                {
                    "merchant_id": merchants["merchant_id"],
                    "country": merchants["country"],
                    "ts": pa.array(merchants["ts"], TS),
                    "risk": pa.array(merchants["risk"], pa.float64()),
                }
            ),
            "data/orders.parquet": pa.table(
                {
                    "user_id": pa.array(orders["user_id"], pa.int64()),
                    "ts": pa.array(orders["ts"], TS),
                    "amount": pa.array(orders["amount"], pa.int64()),
                }
            ),
        },
    )
    feature_store = headwater.FeatureStore(root)
    feature_store.apply()
    feature_store.run()
    yield feature_store
    feature_store.close()


def entities(*rows: tuple[int, datetime]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([r[0] for r in rows], pa.int64()),
            "event_timestamp": pa.array([r[1] for r in rows], TS),
        }
    )


def column(store: headwater.FeatureStore, entity_df: pa.Table, ref: str) -> list[Any]:
    """The values of one requested feature, in entity row order."""
    table = store.get_historical_features(entity_df, [ref]).to_arrow()
    return table.column(ref.split(":")[1]).to_pylist()


def test_ttl_bounds_are_inclusive_at_both_ends(store: headwater.FeatureStore) -> None:
    times = [T0 - MS, T0, T0 + 30 * MIN, T0 + HOUR, T0 + HOUR + MS, T0 + 2 * HOUR]
    entity_df = entities(*[(1, t) for t in times])
    assert column(store, entity_df, "profile_recent:score") == [None, 10, 10, 10, None, 12]
    # Without a ttl the value stays valid until a newer one arrives.
    assert column(store, entity_df, "profile:score") == [None, 10, 10, 10, 10, 12]


def test_same_event_time_goes_to_the_greatest_created_timestamp(
    store: headwater.FeatureStore,
) -> None:
    entity_df = entities((2, T0), (5, T0), (4, T0), (2, T0 + HOUR))
    assert column(store, entity_df, "profile:score") == [21, 51, 41, 21]
    assert column(store, entity_df, "profile:tier") == ["b", "b", "b", "b"]
    offline = store.offline.dataset("profile")
    assert offline is not None
    rows = offline.to_table(filter=pc.field("user_id") == 2).to_pylist()
    assert [(r["score"], r["created_timestamp"]) for r in rows] == [(21, T0 + 2 * MIN)]


def test_rows_without_an_earlier_feature_keep_nulls(store: headwater.FeatureStore) -> None:
    entity_df = entities((1, T0 - timedelta(days=1)), (999, T0 + HOUR), (1, T0))
    result = store.get_historical_features(
        entity_df, ["profile:score", "profile:tier", "user_hourly:amount_sum"]
    ).to_arrow()
    assert result.num_rows == 3
    assert result.column("user_id").to_pylist() == [1, 999, 1]
    assert result.column("score").to_pylist() == [None, None, 10]
    assert result.column("tier").to_pylist() == [None, None, "gold"]
    assert result.column("amount_sum").to_pylist() == [None, None, None]


def test_duplicate_entity_rows_are_all_kept_in_input_order(store: headwater.FeatureStore) -> None:
    at = T0 + 30 * MIN
    entity_df = entities((1, at), (2, at), (1, at), (1, T0 - MS), (1, at), (3, at), (1, at))
    entity_df = entity_df.append_column("label", pa.array(range(7), pa.int64()))
    result = store.get_historical_features(entity_df, ["profile:score"]).to_arrow()
    assert result.column("label").to_pylist() == list(range(7))
    assert result.column("user_id").to_pylist() == [1, 2, 1, 1, 1, 3, 1]
    assert result.column("event_timestamp").to_pylist() == entity_df["event_timestamp"].to_pylist()
    assert result.column("score").to_pylist() == [10, 21, 10, None, 10, 31, 10]


def test_no_value_from_the_future(store: headwater.FeatureStore) -> None:
    entity_df = entities((3, T0 - MS), (3, T0), (3, T0 + MS), (1, T0 + HOUR - MS), (1, T0 + HOUR))
    assert column(store, entity_df, "profile:score") == [None, 30, 31, 10, 10]
    # An hourly window's row is stamped with the window end: it is unknown before that instant.
    assert column(store, entity_df, "user_hourly:amount_sum") == [None, None, None, None, 12]


def test_several_views_and_a_two_column_entity(store: headwater.FeatureStore) -> None:
    entity_df = pa.table(
        {
            "user_id": pa.array([1, 1, 1, 2, 1, 3], pa.int64()),
            "merchant_id": ["m1", "m1", "m1", "m2", "m1", None],
            "country": ["FR", "DE", "FR", "FR", "FR", "FR"],
            "event_timestamp": pa.array(
                [
                    T0 + 40 * MIN,
                    T0 + HOUR,
                    T0 + HOUR - MS,
                    T0 + 3 * HOUR,
                    T0 + 3 * HOUR,
                    T0 + 3 * HOUR,
                ],
                TS,
            ),
        }
    )
    refs = [
        "profile:score",
        "merchant_risk:risk",
        "user_hourly:amount_sum",
        "user_hourly:count",
        "profile_recent:score",
    ]
    result = store.get_historical_features(entity_df, refs, full_feature_names=True).to_arrow()
    assert result.column_names == [
        "user_id",
        "merchant_id",
        "country",
        "event_timestamp",
        "profile__score",
        "merchant_risk__risk",
        "user_hourly__amount_sum",
        "user_hourly__count",
        "profile_recent__score",
    ]
    assert result.drop_columns(["event_timestamp"]).to_pylist() == [
        row(1, "m1", "FR", 10, 0.2, None, None, 10),
        row(1, "m1", "DE", 10, 0.9, 12, 2, 10),
        row(1, "m1", "FR", 10, 0.2, None, None, 10),
        row(2, "m2", "FR", 21, None, None, None, None),
        row(1, "m1", "FR", 12, 0.2, 1, 1, 12),
        row(3, None, "FR", 31, None, None, None, None),
    ]


def row(
    user_id: int,
    merchant_id: str | None,
    country: str,
    score: int | None,
    risk: float | None,
    amount_sum: int | None,
    count: int | None,
    recent: int | None,
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "merchant_id": merchant_id,
        "country": country,
        "profile__score": score,
        "merchant_risk__risk": risk,
        "user_hourly__amount_sum": amount_sum,
        "user_hourly__count": count,
        "profile_recent__score": recent,
    }


def test_full_feature_names(store: headwater.FeatureStore) -> None:
    entity_df = entities((1, T0), (2, T0))
    result = store.get_historical_features(
        entity_df,
        ["profile:score", "profile_recent:score", "profile:tier"],
        full_feature_names=True,
    ).to_arrow()
    assert sorted(result.column_names) == [
        "event_timestamp",
        "profile__score",
        "profile__tier",
        "profile_recent__score",
        "user_id",
    ]
    assert result.column("profile__score").to_pylist() == [10, 21]
    assert result.column("profile__tier").to_pylist() == ["gold", "b"]
    assert result.column("profile_recent__score").to_pylist() == [10, 21]


def test_entity_dataframe_kinds_give_the_same_result(store: headwater.FeatureStore) -> None:
    import pandas as pd
    import polars as pl

    users = [1, 2, 3, 1, 999]
    times = [T0 + HOUR, T0, T0 + MS, T0 - MS, T0]
    refs = ["profile:score", "profile:tier", "merchant_risk:risk", "user_hourly:amount_sum"]
    frames = {
        "arrow": pa.table(
            {
                "user_id": pa.array(users, pa.int64()),
                "merchant_id": ["m1"] * 5,
                "country": ["FR"] * 5,
                "event_timestamp": pa.array(times, TS),
            }
        ),
        "pandas": pd.DataFrame(
            {
                "user_id": users,
                "merchant_id": ["m1"] * 5,
                "country": ["FR"] * 5,
                "event_timestamp": pd.to_datetime(times, utc=True),
            }
        ),
        "polars": pl.DataFrame(
            {
                "user_id": users,
                "merchant_id": ["m1"] * 5,
                "country": ["FR"] * 5,
                "event_timestamp": times,
            }
        ),
    }
    results = {}
    for kind, frame in frames.items():
        table = store.get_historical_features(frame, refs).to_arrow()
        times_column = table.column("event_timestamp").cast(TS)
        results[kind] = table.set_column(3, "event_timestamp", times_column).to_pylist()
    assert results["pandas"] == results["arrow"]
    assert results["polars"] == results["arrow"]
    assert [r["score"] for r in results["arrow"]] == [10, 21, 31, None, None]
    assert [r["amount_sum"] for r in results["arrow"]] == [12, None, None, None, None]
    assert [r["risk"] for r in results["arrow"]] == [0.2, 0.1, 0.1, None, 0.1]
    job = store.get_historical_features(frames["polars"], refs)
    assert isinstance(job.to_polars(), pl.DataFrame)
    assert isinstance(job.to_pandas(), pd.DataFrame)


def test_feature_name_collision_without_full_names_is_an_error(
    store: headwater.FeatureStore,
) -> None:
    entity_df = entities((1, T0))
    with pytest.raises(DefinitionError, match="'score' appears twice") as caught:
        store.get_historical_features(entity_df, ["profile:score", "profile_recent:score"])
    assert caught.value.fix is not None and "full_feature_names=True" in caught.value.fix
    clashing = entity_df.append_column("tier", pa.array(["x"]))
    with pytest.raises(DefinitionError, match="'tier' appears twice"):
        store.get_historical_features(clashing, ["profile:tier"])
    result = store.get_historical_features(
        entity_df, ["profile:score", "profile_recent:score"], full_feature_names=True
    ).to_arrow()
    assert result.column("profile__score").to_pylist() == [10]
