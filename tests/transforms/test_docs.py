"""The examples of docs/transforms.md, run as written: the first ``python`` block is a project's
definitions module, the other ``python`` blocks run in order in one namespace inside that project
(``py`` blocks are fragments for reading)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from tests.helpers import TS, offline_rows, write_project

DOC = Path(__file__).resolve().parents[2] / "docs" / "transforms.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def orders() -> pa.Table:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        # order_id, user_id, days after start, amount, email, card, ssn
        (1, 1, 0, 12.5, "ann@example.com", "4111111111111234", "111-11-1111"),
        (1, 1, 2, 15.0, "ann@example.com", "4111111111111234", "111-11-1111"),  # a new version
        (2, 2, 30, None, "bob@example.com", "5500000000000004", "222-22-2222"),
        (3, 2, 90, 250.0, "bob@example.com", "5500000000000004", "222-22-2222"),
        (4, 3, 200, 99_999.0, "cy@example.com", "12", None),  # clipped; after the fit range
        (5, None, 250, 1.0, "nobody@example.com", None, None),  # quarantined by the check
    ]
    return pa.table(
        {
            "order_id": [r[0] for r in rows],
            "user_id": pa.array([r[1] for r in rows], pa.int64()),
            "updated_at": pa.array([start + timedelta(days=r[2]) for r in rows], TS),
            "amount": pa.array([r[3] for r in rows], pa.float64()),
            "email": [r[4] for r in rows],
            "card": [r[5] for r in rows],
            "ssn": pa.array([r[6] for r in rows], pa.string()),
        }
    )


def test_the_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 4
    write_project(tmp_path, blocks[0], data={"data/orders.parquet": orders()})
    monkeypatch.setenv("PII_SALT", "a-long-random-secret")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks[1:]:
        exec(compile(block, str(DOC), "exec"), namespace)  # the documented code
    store = namespace["store"]
    rows = sorted(offline_rows(store, "order_features"), key=lambda r: r["event_timestamp"])
    assert [r["user_id"] for r in rows] == [1, 2, 2, 3]  # order 1 once; user None set aside
    assert all(len(r["email"]) == 64 for r in rows)
    masked = ["*" * 12 + "1234", "*" * 12 + "0004", "*" * 12 + "0004", "**"]
    assert [r["card"] for r in rows] == masked
    assert "ssn" not in store.offline.dataset("order_features").schema.names  # type: ignore[attr-defined]
    # Standardised with statistics of the first half of 2024 (orders 1, 2 filled with 0, 3).
    fitted = store.registry.fitted_statistics("order_features")  # type: ignore[attr-defined]
    assert [(f.step, f.rows, f.view_version) for f in fitted] == [("standardize(amount)", 3, 1)]
    stats = fitted[0].stats
    assert stats["mean"] == pytest.approx(265 / 3)
    assert rows[-1]["amount"] == pytest.approx((10_000 - stats["mean"]) / stats["std"])
    daily = sorted(offline_rows(store, "daily_spend"), key=lambda r: r["event_timestamp"])
    assert [r["amount_sum"] for r in daily] == [15.0, None, 250.0, 10_000.0]
    store.close()  # type: ignore[attr-defined]
