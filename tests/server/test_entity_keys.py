"""Entity key values take one rule on every read path: the HTTP API, ``get_online_features``
and ``get_historical_features`` convert a value to the key's declared type when nothing is lost,
and refuse it otherwise, naming the key, its type and the value."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from headwater import FeatureStore
from headwater.engines.keys import coerce_key
from headwater.errors import InvalidEntityKey
from headwater.server import create_app
from tests.server import BASE, build_project

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

FEATURES = ["user_last_order:last_amount", "user_orders_daily:count"]
TYPE_LINE = "entity key 'user_id' of view 'user_last_order' is an integer (int64)"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStore]:
    with build_project(tmp_path_factory.mktemp("project")) as built:
        yield built


@pytest.fixture
def client(store: FeatureStore) -> TestClient:
    return TestClient(create_app(store))


def _online(client: TestClient, keys: list[Any]) -> Any:
    return client.post(
        "/features/online", json={"features": FEATURES, "entities": {"user_id": keys}}
    )


def test_http_text_keys_read_the_same_values_as_integers(client: TestClient) -> None:
    as_int, as_text = _online(client, [1, 2]), _online(client, ["1", "2"])
    assert as_int.status_code == as_text.status_code == 200, as_text.text
    assert as_text.json() == as_int.json()
    assert as_text.json()["results"]["last_amount"] == [5.5, 7.25]


@pytest.mark.parametrize("bad", ["abc", "1.5", 1.5, True, "99999999999999999999"])
def test_http_a_value_not_of_the_key_type_is_a_422(client: TestClient, bad: Any) -> None:
    response = _online(client, [1, bad])
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"].startswith(TYPE_LINE), body
    assert repr(bad) in body["error"]
    assert "\n" not in body["error"] and body["fix"]


def test_http_an_unknown_key_is_a_400(client: TestClient) -> None:
    response = client.post(
        "/features/online",
        json={"features": FEATURES, "entity_rows": [{"user_id": 1, "usr_id": 1}]},
    )
    assert response.status_code == 400, response.text
    assert "'usr_id' is not a join key" in response.json()["error"]


def test_sdk_online_converts_and_refuses_like_http(store: FeatureStore) -> None:
    result = store.get_online_features(FEATURES, [{"user_id": "1"}, {"user_id": 2.0}]).to_dict()
    assert result == {"user_id": [1, 2], "last_amount": [5.5, 7.25], "count": [2, 1]}
    with pytest.raises(InvalidEntityKey, match="but was given 'abc'"):
        store.get_online_features(FEATURES, [{"user_id": "abc"}])


def test_historical_entity_frames_follow_the_same_rule(store: FeatureStore) -> None:
    at = BASE + timedelta(days=1, hours=12)
    frame = pa.table({"user_id": ["1", "2"], "event_timestamp": pa.array([at, at])})
    table = store.get_historical_features(frame, ["user_last_order:last_amount"]).to_arrow()
    assert table.column("user_id").to_pylist() == [1, 2]
    assert table.column("last_amount").to_pylist() == [5.5, 7.25]
    bad = pa.table({"user_id": ["1", "1.5"], "event_timestamp": pa.array([at, at])})
    with pytest.raises(InvalidEntityKey, match=r"is an integer \(int64\), but was given '1.5'"):
        store.get_historical_features(bad, ["user_last_order:last_amount"])


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        ("7", pa.int32(), 7),
        (" -7 ", pa.int64(), -7),
        (3.0, pa.int64(), 3),
        (Decimal("4"), pa.int16(), 4),
        (7, pa.string(), "7"),
        ("007", pa.string(), "007"),
        ("0.1", pa.float64(), 0.1),
        (2, pa.float64(), 2.0),
        ("true", pa.bool_(), True),
        ("1.50", pa.decimal128(10, 2), Decimal("1.50")),
        ("2024-01-02", pa.date32(), date(2024, 1, 2)),
    ],
)
def test_lossless_conversions(value: Any, type_: pa.DataType, expected: Any) -> None:
    assert coerce_key(value, key="k", type=type_) == expected


@pytest.mark.parametrize(
    ("value", "type_"),
    [
        ("abc", pa.int64()),
        ("1.5", pa.int64()),
        (1.5, pa.int64()),
        (True, pa.int64()),
        (128, pa.int8()),
        (-1, pa.uint32()),
        ("1e3", pa.int64()),
        (1.5, pa.string()),
        (2**53 + 1, pa.float64()),
        ("1.505", pa.decimal128(10, 2)),
        ("maybe", pa.bool_()),
        ("yesterday", pa.timestamp("us", tz="UTC")),
    ],
)
def test_lossy_conversions_are_refused(value: Any, type_: pa.DataType) -> None:
    pattern = f"entity key 'k' is .*{re.escape(str(type_))}.*was given"
    with pytest.raises(InvalidEntityKey, match=pattern):
        coerce_key(value, key="k", type=type_)


def test_numpy_scalars_and_narrower_integer_frames_are_accepted(store: FeatureStore) -> None:
    import numpy as np

    rows = [{"user_id": np.int64(1)}, {"user_id": np.int32(2)}]
    assert store.get_online_features(FEATURES, rows).to_dict()["last_amount"] == [5.5, 7.25]
    at = BASE + timedelta(days=1, hours=12)
    frame = pa.table({"user_id": pa.array([1, 2], pa.int32()), "event_timestamp": [at, at]})
    table = store.get_historical_features(frame, ["user_last_order:last_amount"]).to_arrow()
    assert table.column("user_id").type == pa.int64()
    assert table.column("last_amount").to_pylist() == [5.5, 7.25]
