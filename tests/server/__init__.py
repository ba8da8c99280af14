"""Tests of the HTTP server, and the small real project they serve."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from headwater import FeatureStore

DEFINITIONS = textwrap.dedent(
    """
    from headwater.definitions import Count, Entity, FeatureView, FileSource, Sum, Tumbling

    user = Entity("user", join_keys=["user_id"], description="a customer")
    orders = FileSource(name="orders", path="data/orders.parquet", timestamp_field="ts")

    user_last_order = FeatureView(
        "user_last_order",
        entity=user,
        source=orders,
        features={
            "last_amount": "amount",
            "last_country": "country",
            "last_order_at": "ts",
            "amount_exact": "CAST(amount AS DECIMAL(10, 2))",
            "country_bytes": "CAST(country AS BLOB)",
        },
    )

    user_orders_daily = FeatureView(
        "user_orders_daily",
        entity=user,
        source=orders,
        features=[Sum("amount"), Count()],
        window=Tumbling("1d"),
    )
    """
)

# Two days before today (UTC midnight), so that every daily window has closed.
BASE = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
ORDERS = [
    # user_id, amount, country, hours after BASE
    (1, 10.0, "FR", 1),
    (1, 5.5, "FR", 3),
    (2, 7.25, "DE", 5),
    (3, 1.0, "US", 26),
]


def build_project(root: Path) -> FeatureStore:
    """Write a project (one source, a projection and a daily aggregation), apply, run and
    materialize it, and return its store."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "headwater.yaml").write_text("project: t\n")
    (root / "definitions.py").write_text(DEFINITIONS)
    (root / "data").mkdir()
    table = pa.table(
        {
            "user_id": pa.array([o[0] for o in ORDERS], pa.int64()),
            "amount": pa.array([o[1] for o in ORDERS], pa.float64()),
            "country": [o[2] for o in ORDERS],
            "ts": pa.array(
                [BASE + timedelta(hours=o[3]) for o in ORDERS], pa.timestamp("us", tz="UTC")
            ),
        }
    )
    pq.write_table(table, root / "data" / "orders.parquet")
    store = FeatureStore(root)
    store.apply()
    store.run()
    store.materialize()
    return store
