"""Shared pieces of the transform tests: an orders table, a project around it, its rows."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

import headwater
from tests.helpers import TS, offline_rows, write_project

BASE = datetime(2024, 1, 1, tzinfo=UTC)
SALT = "pepper-for-tests-only"

HEADER = """
from headwater import Count, Entity, FeatureView, FileSource, Max, Sum, Tumbling, transforms

user = Entity("user", join_keys=["user_id"])
orders = FileSource("orders", path="data/orders.parquet", timestamp_field="updated_at")
"""


def at(days: float) -> datetime:
    return BASE + timedelta(days=days)


def orders_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Orders with ``order_id, user_id, updated_at, amount, email, card, ssn`` (missing keys are
    null; ``updated_at`` is given in days after BASE)."""
    return pa.table(
        {
            "order_id": pa.array([r.get("order_id") for r in rows], pa.int64()),
            "user_id": pa.array([r.get("user_id", 1) for r in rows], pa.int64()),
            "updated_at": pa.array([at(r["day"]) for r in rows], TS),
            "amount": pa.array([r.get("amount") for r in rows], pa.float64()),
            "email": pa.array([r.get("email") for r in rows], pa.string()),
            "card": pa.array([r.get("card") for r in rows], pa.string()),
            "ssn": pa.array([r.get("ssn") for r in rows], pa.string()),
        }
    )


def project(tmp_path: Path, body: str, rows: list[dict[str, Any]]) -> headwater.FeatureStore:
    """A project with ``data/orders.parquet`` and ``HEADER`` + ``body`` as its definitions."""
    write_project(
        tmp_path,
        HEADER + textwrap.dedent(body),
        data={"data/orders.parquet": orders_table(rows)},
    )
    return headwater.FeatureStore(tmp_path)


def rows_of(store: headwater.FeatureStore, view: str) -> list[dict[str, Any]]:
    """The view's offline rows, sorted, with ``event_timestamp`` as days after BASE."""
    found = offline_rows(store, view)
    for row in found:
        row["event_timestamp"] = (row["event_timestamp"] - BASE) / timedelta(days=1)
    return sorted(found, key=lambda r: (r["event_timestamp"], str(r)))
