"""Check results and source schemas in the registry, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headwater.config import parse_config
from headwater.stores.registry import CheckRecord, Registry


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "sqlite":
        registry: dict[str, Any] = {"type": "sqlite", "path": "state/registry.db"}
    else:
        registry = {"type": "postgres", "dsn": request.getfixturevalue("pg_dsn"), "schema": "q"}
    opened = Registry.open(parse_config({"project": "t", "registry": registry}, tmp_path))
    yield opened
    opened.close()


def record(run_id: str, stage: str, check: str, **extra: Any) -> CheckRecord:
    values: dict[str, Any] = {
        "run_id": run_id,
        "view": "v",
        "stage": stage,
        "subject": "source 's'",
        "check": check,
        "kind": "not_null",
        "severity": "quarantine",
        "columns": ("user_id",),
        "passed": False,
        "action": "quarantined",
        "rows_checked": 10,
        "rows_failed": 2,
        "message": "2 of 10 rows fail",
        "sample": [None, "2024-01-01T00:00:00+00:00"],
    }
    values.update(extra)
    return CheckRecord(**values)


def test_check_results_per_run(reg: Registry) -> None:
    first, second = "01a0000000000000000000000000000a", "01a0000000000000000000000000000b"
    reg.record_checks([record(first, "source", "a"), record(first, "source", "b")])
    reg.record_checks([record(first, "view", "c", passed=True, action="passed")])
    reg.record_checks([record(second, "source", "a", rows_failed=0, passed=True)])
    found = reg.check_results("v")
    assert [(r.run_id, r.stage, r.check) for r in found] == [
        (second, "source", "a"),
        (first, "source", "a"),
        (first, "source", "b"),
        (first, "view", "c"),
    ]
    one = reg.check_results(run_id=first)[0]
    assert one.columns == ("user_id",)
    assert one.sample == [None, "2024-01-01T00:00:00+00:00"]
    assert one.passed is False and one.recorded_at is not None
    # Recording a stage of a run again replaces its results.
    reg.record_checks([record(first, "source", "a", rows_failed=5)])
    assert [r.rows_failed for r in reg.check_results(run_id=first) if r.check == "a"] == [5]
    assert reg.check_results("other") == []


def test_source_schemas(reg: Registry) -> None:
    assert reg.source_schema("orders") is None
    schema = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC"))])
    reg.set_source_schema("orders", schema)
    assert reg.source_schema("orders") == schema
    reg.set_source_schema("orders", schema.append(pa.field("x", pa.string())))
    stored = reg.source_schema("orders")
    assert stored is not None and stored.names == ["id", "ts", "x"]
