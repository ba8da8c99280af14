"""The HTTP API against a real project: values, errors, auth, metrics and the dashboard's JSON."""

from __future__ import annotations

import base64
import math
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from headwater import FeatureStore
from headwater.errors import ConfigError
from headwater.server import create_app
from headwater.server.payloads import json_safe
from tests.server import build_project

with warnings.catch_warnings():
    # Starlette's TestClient prefers httpx2 and warns when it falls back to httpx.
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

ALL_FEATURES = [
    "user_last_order:last_amount",
    "user_last_order:last_country",
    "user_last_order:last_order_at",
    "user_last_order:amount_exact",
    "user_last_order:country_bytes",
    "user_orders_daily:amount_sum",
    "user_orders_daily:count",
]
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStore]:
    with build_project(tmp_path_factory.mktemp("project")) as built:
        yield built


@pytest.fixture
def client(store: FeatureStore) -> TestClient:
    return TestClient(create_app(store))


@pytest.fixture
def secured(store: FeatureStore) -> TestClient:
    return TestClient(create_app(store, token=TOKEN))


def _decode(value: Any, like: Any) -> Any:
    """Turn a JSON value back into the Python type of the SDK's value ``like``."""
    if value is None or like is None:
        return value
    if isinstance(like, datetime):
        return datetime.fromisoformat(value)
    if isinstance(like, Decimal):
        return Decimal(value)
    if isinstance(like, bytes):
        return base64.b64decode(value)
    return value


def _metrics(client: TestClient, **headers: str) -> dict[str, list[Any]]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(response.text)}


# ---------------------------------------------------------------------- health and lookups
def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "project": "t", "views": 2}


def test_online_features_equal_the_sdk(client: TestClient, store: FeatureStore) -> None:
    keys = [1, 2, 3, 99]
    response = client.post(
        "/features/online", json={"features": ALL_FEATURES, "entities": {"user_id": keys}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = store.get_online_features(ALL_FEATURES, [{"user_id": k} for k in keys]).to_dict()
    assert body["metadata"]["feature_names"] == list(expected) == list(body["results"])
    decoded = {
        name: [_decode(v, like) for v, like in zip(values, expected[name], strict=True)]
        for name, values in body["results"].items()
    }
    assert decoded == expected
    results = body["results"]
    assert results["user_id"] == keys
    assert results["last_amount"] == [5.5, 7.25, 1.0, None]
    assert results["amount_exact"] == ["5.50", "7.25", "1.00", None]
    assert results["country_bytes"][0] == base64.b64encode(b"FR").decode()
    assert isinstance(results["last_order_at"][0], str)
    assert results["count"][:3] == [2, 1, 1] and results["count"][3] is None


def test_entity_rows_and_full_feature_names(client: TestClient, store: FeatureStore) -> None:
    features = ["user_orders_daily:amount_sum", "user_last_order:last_country"]
    response = client.post(
        "/features/online",
        json={"features": features, "entity_rows": [{"user_id": 1}], "full_feature_names": True},
    )
    assert response.status_code == 200, response.text
    expected = store.get_online_features(features, [{"user_id": 1}], full_feature_names=True)
    assert response.json()["results"] == json_safe(expected.to_dict())
    assert response.json()["results"] == {
        "user_id": [1],
        "user_orders_daily__amount_sum": [15.5],
        "user_last_order__last_country": ["FR"],
    }


def test_star_reference_serves_every_feature_of_a_view(client: TestClient) -> None:
    body = {"features": ["user_orders_daily:*"], "entities": {"user_id": [2]}}
    results = client.post("/features/online", json=body).json()["results"]
    assert results == {"user_id": [2], "amount_sum": [7.25], "count": [1]}


# ---------------------------------------------------------------------- user errors
@pytest.mark.parametrize(
    ("features", "named"),
    [
        (["user_orders_daily:nope"], "nope"),
        (["no_such_view:amount_sum"], "no_such_view"),
        (["not-a-reference"], "not-a-reference"),
    ],
)
def test_unknown_feature_is_a_400_with_a_fix(
    client: TestClient, features: list[str], named: str
) -> None:
    response = client.post(
        "/features/online", json={"features": features, "entities": {"user_id": [1]}}
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "fix"}
    assert named in body["error"]
    assert body["fix"]
    assert "Traceback" not in response.text


def test_missing_join_key_is_a_400(client: TestClient) -> None:
    response = client.post(
        "/features/online",
        json={"features": ["user_orders_daily:count"], "entities": {"customer": [1]}},
    )
    assert response.status_code == 400
    assert "user_id" in response.json()["error"]
    assert "user_id" in response.json()["fix"]


@pytest.mark.parametrize(
    "body",
    [
        {"entities": {"user_id": [1]}},
        {"features": [], "entities": {"user_id": [1]}},
        {"features": ["user_orders_daily:count"]},
        {"features": ["user_orders_daily:count"], "entities": {"user_id": []}},
        {"features": ["user_orders_daily:count"], "entities": {"user_id": [1], "x": [1, 2]}},
        {"features": ["user_orders_daily:count"], "entities": {}, "entity_rows": []},
        {"features": ["user_orders_daily:count"], "entities": {"user_id": [1]}, "extra": 1},
        {"features": "user_orders_daily:count", "entities": {"user_id": [1]}},
    ],
)
def test_malformed_requests_are_400s(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/features/online", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] and response.json()["fix"]


def test_body_that_is_not_json_is_a_400(client: TestClient) -> None:
    response = client.post(
        "/features/online", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "error" in response.json()


def test_unknown_path_is_a_json_404(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert "error" in response.json()


# ---------------------------------------------------------------------- token
def test_token_is_required_everywhere_but_health_and_the_page(secured: TestClient) -> None:
    lookup = {"features": ["user_orders_daily:count"], "entities": {"user_id": [1]}}
    protected = [
        ("POST", "/features/online", lookup),
        ("GET", "/metrics", None),
        ("GET", "/api/views", None),
        ("GET", "/api/runs", None),
    ]
    for method, path, body in protected:
        missing = secured.request(method, path, json=body)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["fix"]
        wrong = secured.request(method, path, json=body, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401, path
        right = secured.request(
            method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert right.status_code == 200, path
    assert secured.get("/health").status_code == 200
    assert secured.get("/").status_code == 200
    assert secured.get("/static/dashboard.js").status_code == 200


def test_an_empty_token_is_refused(store: FeatureStore) -> None:
    with pytest.raises(ConfigError, match="empty"):
        create_app(store, token=" ")


def test_token_is_not_in_error_bodies(secured: TestClient) -> None:
    response = secured.get("/api/views", headers={"Authorization": "Bearer guess-1234"})
    assert response.status_code == 401
    assert TOKEN not in response.text and "guess-1234" not in response.text


# ---------------------------------------------------------------------- metrics
def test_metrics_count_requests_features_and_errors(client: TestClient) -> None:
    ok = {"features": ["user_orders_daily:*"], "entities": {"user_id": [1, 2, 3]}}
    assert client.post("/features/online", json=ok).status_code == 200
    bad = {"features": ["user_orders_daily:nope"], "entities": {"user_id": [1]}}
    assert client.post("/features/online", json=bad).status_code == 400
    families = _metrics(client)

    requests = {
        (s.labels["endpoint"], s.labels["status"]): s.value
        for s in families["headwater_http_requests"]
        if s.name.endswith("_total")
    }
    assert requests[("/features/online", "200")] == 1
    assert requests[("/features/online", "400")] == 1
    buckets = [
        s
        for s in families["headwater_http_request_duration_seconds"]
        if s.name.endswith("_count") and s.labels["endpoint"] == "/features/online"
    ]
    assert buckets[0].value == 2
    served = {
        s.labels["view"]: s.value
        for s in families["headwater_online_features_served"]
        if s.name.endswith("_total")
    }
    assert served == {"user_orders_daily": 2 * 3}
    rows = families["headwater_online_entity_rows"]
    assert [s.value for s in rows if s.name.endswith("_total")] == [3]
    errors = {
        (s.labels["endpoint"], s.labels["error"]): s.value
        for s in families["headwater_http_errors"]
        if s.name.endswith("_total")
    }
    assert errors == {("/features/online", "DefinitionError"): 1}


def test_metrics_have_gauges_per_view(client: TestClient, store: FeatureStore) -> None:
    families = _metrics(client)
    by_view = {
        name: {s.labels["view"]: s.value for s in families[name]}
        for name in [
            "headwater_view_last_run_success",
            "headwater_view_last_run_timestamp_seconds",
            "headwater_view_last_run_rows_in",
            "headwater_view_last_run_rows_out",
            "headwater_view_offline_rows",
            "headwater_view_newest_event_timestamp_seconds",
            "headwater_view_newest_event_age_seconds",
        ]
    }
    status = {s.name: s for s in store.status()}
    assert set(by_view["headwater_view_offline_rows"]) == set(status)
    for name, s in status.items():
        assert by_view["headwater_view_offline_rows"][name] == s.offline_rows
        assert by_view["headwater_view_last_run_success"][name] == 1
        assert by_view["headwater_view_last_run_rows_in"][name] == s.last_run.rows_in
        assert by_view["headwater_view_last_run_rows_out"][name] == s.last_run.rows_out
        assert math.isclose(
            by_view["headwater_view_newest_event_timestamp_seconds"][name],
            s.latest_event.timestamp(),
        )
        assert by_view["headwater_view_newest_event_age_seconds"][name] > 0
        ran = by_view["headwater_view_last_run_timestamp_seconds"][name]
        assert ran <= datetime.now(UTC).timestamp()
    assert [s.value for s in families["headwater_status_up"]] == [1]
    info = {s.labels["view"]: s.labels for s in families["headwater_view_info"]}
    assert info["user_orders_daily"]["shape"] == "aggregation"


def test_each_app_has_its_own_registry(store: FeatureStore) -> None:
    first, second = TestClient(create_app(store)), TestClient(create_app(store))
    first.get("/health")
    families = _metrics(second)
    health = [s for s in families["headwater_http_requests"] if s.labels["endpoint"] == "/health"]
    assert health == []
    assert not any(m.name.startswith("headwater_") for m in REGISTRY.collect())


def test_status_is_cached_between_scrapes(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = store.status

    def counting() -> Any:
        calls.append(1)
        return original()

    monkeypatch.setattr(store, "status", counting)
    client = TestClient(create_app(store, status_ttl=60))
    _metrics(client)
    _metrics(client)
    client.get("/api/views")
    assert len(calls) == 1


def test_a_failing_status_does_not_break_the_scrape(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Any:
        raise OSError("offline store unreadable")

    monkeypatch.setattr(store, "status", broken)
    families = _metrics(TestClient(create_app(store)))
    assert [s.value for s in families["headwater_status_up"]] == [0]
    assert "headwater_http_requests" in families


# ---------------------------------------------------------------------- dashboard JSON
def test_api_views(client: TestClient, store: FeatureStore) -> None:
    body = client.get("/api/views").json()
    assert body["project"] == "t"
    views = {v["name"]: v for v in body["views"]}
    assert set(views) == {"user_last_order", "user_orders_daily"}
    daily = views["user_orders_daily"]
    status = {s.name: s for s in store.status()}["user_orders_daily"]
    assert daily["shape"] == "aggregation"
    assert daily["window"] == "tumbling 1d"
    assert daily["entity"] == "user"
    assert daily["join_keys"] == [{"name": "user_id", "type": "int64"}]
    assert daily["source"] == "orders" and daily["source_kind"] == "file"
    assert [f["name"] for f in daily["features"]] == ["amount_sum", "count"]
    assert daily["offline_rows"] == status.offline_rows
    assert datetime.fromisoformat(daily["newest_event"]) == status.latest_event
    assert daily["newest_event_age_seconds"] > 0
    assert daily["last_run"]["status"] == "success"
    assert views["user_last_order"]["shape"] == "projection"
    assert views["user_last_order"]["window"] == ""


def test_api_runs(client: TestClient, store: FeatureStore) -> None:
    runs = client.get("/api/runs").json()["runs"]
    assert [r["run_id"] for r in runs] == [r.run_id for r in store.registry.runs()]
    assert {(r["view"], r["kind"]) for r in runs} == {
        (view, kind)
        for view in ("user_last_order", "user_orders_daily")
        for kind in ("run", "materialize")
    }
    assert all(r["status"] == "success" and r["duration_seconds"] >= 0 for r in runs)
    one = client.get("/api/runs", params={"view": "user_orders_daily", "kind": "run"}).json()
    assert [(r["view"], r["kind"], r["rows_in"]) for r in one["runs"]] == [
        ("user_orders_daily", "run", 4)
    ]
    assert len(client.get("/api/runs", params={"limit": 1}).json()["runs"]) == 1
    assert client.get("/api/runs", params={"limit": 0}).status_code == 422


def test_dashboard_page_and_assets(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert 'src="/static/dashboard.js"' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    script = client.get("/static/dashboard.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/static/dashboard.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/index.html").status_code == 404
    assert client.get("/static/..%2Fapp.py").status_code == 404


# ---------------------------------------------------------------------- concurrency, encoding
def test_concurrent_lookups_are_all_answered(client: TestClient) -> None:
    body = {"features": ["user_orders_daily:amount_sum"], "entities": {"user_id": [1]}}

    def lookup(_: int) -> Any:
        return client.post("/features/online", json=body).json()["results"]["amount_sum"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lookup, range(40))) == [[15.5]] * 40


def test_json_safe() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    value = {
        "ts": when,
        "d": Decimal("1.50"),
        "b": b"\x00\xff",
        "nan": float("nan"),
        "inf": float("inf"),
        "nested": [(1, when.date()), {"x": Decimal("NaN")}],
    }
    assert json_safe(value) == {
        "ts": "2024-01-02T03:04:05+00:00",
        "d": "1.50",
        "b": "AP8=",
        "nan": None,
        "inf": None,
        "nested": [[1, "2024-01-02"], {"x": None}],
    }
