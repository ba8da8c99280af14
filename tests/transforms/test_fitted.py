"""Fitted statistics: computed once over the training range, stored in the registry, reused
by every later run whatever the data does, fitted again only when the step or range changes or
on request — on the SQLite and the PostgreSQL registry."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import headwater
from headwater.config import parse_config
from headwater.errors import DefinitionError
from headwater.orchestration.fitting import refit
from headwater.stores.registry import FittedStatistics, Registry
from tests.helpers import write_parquet
from tests.transforms.support import orders_table, project, rows_of

# Training range: January 1st to 5th (days 0..3 of the data).
SCALED = """
scaled = FeatureView("scaled", entity=user, source=orders,
    features={"z": "z", "unit": "unit", "amount": "amount"},
    transforms=[
        transforms.clip("amount", 0, 1000),
        transforms.standardize("amount", fit=("2024-01-01", "2024-01-05"), output="z"),
        transforms.normalize("amount", fit=("2024-01-01", "2024-01-05"), output="unit"),
    ])
"""
TRAINING = [10.0, 20.0, 30.0, 5000.0]  # 5000 is clipped to 1000 before fitting
SERVING = [40.0, 60.0]


def orders(amounts: list[float], start: int = 0) -> list[dict[str, Any]]:
    return [{"order_id": start + i, "day": start + i, "amount": a} for i, a in enumerate(amounts)]


def test_statistics_are_fitted_once_and_never_recomputed(tmp_path: Path) -> None:
    store = project(tmp_path, SCALED, orders(TRAINING) + orders(SERVING, start=4))
    store.run()
    clipped = [10.0, 20.0, 30.0, 1000.0]
    mean, std = statistics.fmean(clipped), statistics.pstdev(clipped)
    fitted = {f.step: f for f in store.registry.fitted_statistics("scaled")}
    assert sorted(fitted) == ["normalize(amount)", "standardize(amount)"]
    z = fitted["standardize(amount)"]
    assert z.stats == {"mean": pytest.approx(mean), "std": pytest.approx(std), "rows": 4}
    assert (z.rows, z.position, z.view_version) == (4, 2, None)
    assert z.fit_end_ms - z.fit_start_ms == 4 * 86_400_000
    assert fitted["normalize(amount)"].stats == {"min": 10.0, "max": 1000.0, "rows": 4}
    rows = rows_of(store, "scaled")
    assert [r["z"] for r in rows] == pytest.approx([(a - mean) / std for a in clipped + SERVING])
    assert [r["unit"] for r in rows] == pytest.approx([(a - 10) / 990 for a in clipped + SERVING])

    # New data inside the training range, and a rerun of everything: the numbers stay.
    write_parquet(
        tmp_path,
        "data/orders.parquet",
        orders_table(orders([500.0, 700.0, 900.0, 100.0]) + orders(SERVING, start=4)),
    )
    store.run(full_refresh=True)
    again = {f.step: f for f in store.registry.fitted_statistics("scaled")}
    assert again == fitted
    assert rows_of(store, "scaled")[-1]["z"] == pytest.approx((60.0 - mean) / std)

    # On request, they are fitted again from the data as it is now.
    new = refit(
        store.view("scaled"),
        project=store.config,
        registry=store.registry,
        con=store.engine.connect(),
    )
    assert new[0].stats["mean"] == pytest.approx(statistics.fmean([500, 700, 900, 100]))
    assert new[0].fitted_at > z.fitted_at  # type: ignore[operator]
    store.close()


def test_a_new_fit_range_or_step_gets_new_statistics(tmp_path: Path) -> None:
    store = project(tmp_path, SCALED, orders(TRAINING) + orders(SERVING, start=4))
    store.run()
    before = store.registry.fitted_statistics("scaled")
    store.close()
    (tmp_path / "defs.py").write_text(
        (tmp_path / "defs.py").read_text().replace('"2024-01-05"', '"2024-01-07"', 1)
    )
    store = headwater.FeatureStore(tmp_path)
    store.run()
    after = {f.step_key: f for f in store.registry.fitted_statistics("scaled")}
    z = next(f for f in after.values() if f.step == "standardize(amount)" and f not in before)
    assert z.rows == 6  # the wider range holds the two later orders too
    # normalize comes after standardize (in place: output=), so its key changed too.
    assert len(after) == 4
    store.close()


def test_fitted_fill_and_outliers_and_apply_version(tmp_path: Path) -> None:
    store = project(
        tmp_path,
        """
        cleaned = FeatureView("cleaned", entity=user, source=orders, features={"amount": "amount"},
            transforms=[
                transforms.fill_null("amount", "median", fit=("2024-01-01", "2024-01-04")),
                transforms.outliers("amount", "zscore", factor=1, fit=("2024-01-01", "2024-01-04")),
            ])
        """,
        orders([1.0, 2.0, 6.0, None, 100.0]),
    )
    store.apply()
    store.run()
    found = {f.step: f for f in store.registry.fitted_statistics("cleaned")}
    assert found["fill_null(amount)"].stats == {"median": 2.0, "rows": 3}
    assert found["fill_null(amount)"].view_version == 1
    mean, std = 3.0, statistics.pstdev([1.0, 2.0, 6.0])
    assert found["outliers(amount)"].stats == {"mean": mean, "std": pytest.approx(std), "rows": 3}
    # The null (day 3) takes the fitted median; 100 is clipped to mean + 1 std.
    assert [r["amount"] for r in rows_of(store, "cleaned")] == pytest.approx(
        [1.0, 2.0, mean + std, 2.0, mean + std]
    )
    store.close()


def test_a_dry_run_fits_without_storing(tmp_path: Path) -> None:
    body = SCALED.replace(
        '"amount": "amount"}', '"amount": "amount"}, checks=[checks.row_count(min=1)]'
    )
    store = project(tmp_path, "from headwater import checks\n" + body, orders(TRAINING))
    (report,) = store.check(["scaled"])
    assert [r.check for _, r in report.results] == ["row_count"] and not report.failed
    assert store.registry.fitted_statistics("scaled") == []
    store.close()


def test_an_empty_training_range_is_a_clear_error(tmp_path: Path) -> None:
    store = project(tmp_path, SCALED, orders(SERVING, start=10))
    with pytest.raises(DefinitionError, match=r"transform 2 \(standardize\(amount\)\)") as err:
        store.run()
    assert "has no such rows with updated_at in [2024-01-01T00:00:00Z, 2024-01-05" in str(err.value)
    store.close()


# ---------------------------------------------------------------------- registry methods
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "sqlite":
        config: dict[str, Any] = {"type": "sqlite", "path": "registry.db"}
    else:
        config = {"type": "postgres", "dsn": request.getfixturevalue("pg_dsn"), "schema": "r"}
    with Registry.open(parse_config({"project": "t", "registry": config}, tmp_path)) as opened:
        yield opened


def test_registry_keeps_the_first_statistics_of_a_key(registry: Registry) -> None:
    record = FittedStatistics("v", "k1", "standardize(x)", 2, 0, 86_400_000, {"mean": 1.5}, 10)
    stored = registry.save_fitted_statistics(record)
    assert stored.stats == {"mean": 1.5} and stored.fitted_at is not None
    # A second writer of the same key gets the first numbers back.
    other = FittedStatistics("v", "k1", "standardize(x)", 2, 0, 86_400_000, {"mean": 9.0}, 3)
    assert registry.save_fitted_statistics(other) == stored
    registry.save_fitted_statistics(
        FittedStatistics("v", "k0", "normalize(x)", 1, 0, 1, {"min": 0.0, "max": 1.0}, 2, 4)
    )
    registry.save_fitted_statistics(FittedStatistics("w", "k", "normalize(y)", 1, 0, 1, {}, 1))
    assert [(f.view, f.position) for f in registry.fitted_statistics("v")] == [("v", 1), ("v", 2)]
    assert registry.fitted_statistics("v", "k0")[0].view_version == 4
    assert len(registry.fitted_statistics()) == 3
    assert registry.delete_fitted_statistics("v") == 2
    assert registry.fitted_statistics("v") == []
    assert len(registry.fitted_statistics()) == 1
