"""The batch-engine seam: runs, backfills, dry runs, materializations and training sets go
through the engine that ``engine.type`` names, by the protocol only — a second engine is one
class registered by name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pytest
import yaml

import headwater
from headwater.config import ProjectConfig
from headwater.config.models import EngineConfig
from headwater.engines import open_engine
from headwater.engines.base import BatchEngine, FeatureRequest
from headwater.engines.duckdb import DuckDBEngine, DuckDBEngineConfig
from headwater.plugins import ENGINES
from tests.helpers import offline_rows, write_parquet

CALLS: list[str] = []


class TracingEngineConfig(EngineConfig):
    """``engine`` of ``type: tracing``: DuckDB underneath, every call noted."""

    type: Literal["tracing"] = "tracing"


class TracingEngine:
    """An engine of another package: it computes with DuckDB and notes each protocol call."""

    config_model: ClassVar[type[TracingEngineConfig]] = TracingEngineConfig

    def __init__(self, project: ProjectConfig) -> None:
        assert isinstance(project.engine, TracingEngineConfig)
        self._inner = DuckDBEngine(project.model_copy(update={"engine": DuckDBEngineConfig()}))

    def __getattr__(self, name: str) -> Any:
        CALLS.append(name)
        return getattr(self._inner, name)


@pytest.fixture
def tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENGINES, "tracing", f"{__name__}:TracingEngine")
    CALLS.clear()


DEFS = """
from headwater import Count, Entity, FeatureView, FileSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
orders = FileSource("orders", path="data/orders.parquet", timestamp_field="ts")
spend = FeatureView("spend", entity=user, source=orders, window=Tumbling("1h"),
                    features=[Count(), Sum("amount")])
"""


def _project(root: Path, engine: dict[str, Any] | None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"project": "t"}
    if engine is not None:
        config["engine"] = engine
    (root / "headwater.yaml").write_text(yaml.safe_dump(config))
    (root / "defs.py").write_text(DEFS)
    at = [datetime(2024, 1, 1, h, m, tzinfo=UTC) for h in (0, 0, 1, 2) for m in (5, 50)]
    write_parquet(
        root,
        "data/orders.parquet",
        pa.table(
            {
                "user_id": [1, 2] * 4,
                "ts": at,
                "amount": [float(i) for i in range(8)],
            }
        ),
    )
    return root


def _everything(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with headwater.FeatureStore(root) as store:
        store.apply()
        store.run()
        store.backfill(start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2024, 1, 2, tzinfo=UTC))
        store.check()
        store.materialize()
        entities = pa.table(
            {"user_id": [1, 2], "event_timestamp": [datetime(2024, 1, 1, 2, tzinfo=UTC)] * 2}
        )
        training = store.get_historical_features(entities, ["spend:count", "spend:amount_sum"])
        return offline_rows(store, "spend"), training.to_arrow().to_pylist()


def test_the_default_engine_is_duckdb_and_keeps_the_protocol(tmp_path: Path) -> None:
    project = headwater.FeatureStore(_project(tmp_path, None)).config
    engine = open_engine(project)
    assert isinstance(engine, DuckDBEngine)
    protocol = {n for n in dir(BatchEngine) if not n.startswith("_")}
    protocol |= set(BatchEngine.__annotations__)
    assert protocol == {
        "compute",
        "config_model",
        "connect",
        "point_in_time_join",
        "unplaceable_rows",
        "validate",
    }
    assert all(callable(getattr(engine, n)) for n in protocol - {"config_model"})
    assert engine.config_model is DuckDBEngineConfig


def test_a_registered_engine_computes_every_run_kind_and_training_sets(
    tracing: None, tmp_path: Path
) -> None:
    expected = _everything(_project(tmp_path / "duckdb", None))
    assert CALLS == []
    got = _everything(_project(tmp_path / "tracing", {"type": "tracing"}))
    assert got == expected
    assert got[0] and got[1][0]["count"] == 1  # user 1 at 02:00: the window [01:00, 02:00)
    for call in ("validate", "connect", "unplaceable_rows", "compute", "point_in_time_join"):
        assert call in CALLS


def test_feature_requests_name_what_a_training_set_needs(tmp_path: Path) -> None:
    with headwater.FeatureStore(_project(tmp_path, None)) as store:
        store.apply()
        store.run()
        request = FeatureRequest(
            store.view("spend"),
            ["count"],
            store.offline.dataset("spend"),
            store.registry.schema("spend") or pa.schema([]),
        )
        entities = pa.table(
            {"user_id": [2, 3], "event_timestamp": [datetime(2024, 1, 1, 3, tzinfo=UTC)] * 2}
        )
        table = store.engine.point_in_time_join(entities, [request])
    assert table.column("count").to_pylist() == [1, None]
