"""``headwater quickstart``: a demo shop project with generated data, run end to end.

Generates users (a CSV of profiles with corrections), orders (a SQLite table, or a PostgreSQL
table when ``--postgres DSN`` is given) and click events (hive-partitioned Parquet), then
applies, runs, materializes, prints online features and writes a point-in-time training set.
"""

from __future__ import annotations

import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from headwater.errors import HeadwaterError

DEFINITIONS = '''\
"""Demo shop: profiles, orders and clicks of users, as feature views."""

from datetime import timedelta

from headwater import (Avg, Count, CountDistinct, Entity, FeatureView, FileSource, Hopping,
                       Last, Max, Sum, Tumbling, {orders_kind})

user = Entity("user", join_keys=["user_id"], description="A shop customer")

profiles = FileSource("profiles", path="data/profiles.csv", timestamp_field="updated_at",
                      created_timestamp_field="ingested_at")
orders = {orders_source}
clicks = FileSource("clicks", path="data/clicks/", format="parquet",
                    timestamp_field="event_timestamp")

user_profile = FeatureView("user_profile", entity=user, source=profiles, ttl=timedelta(days=365),
    features={{"age": "age", "country": "upper(country)", "is_premium": "plan = 'premium'"}})

user_orders_daily = FeatureView("user_orders_daily", entity=user, source=orders,
    window=Tumbling("1d"), ttl=timedelta(days=2),
    features=[Sum("amount", name="amount_sum"), Count(name="order_count"),
              Avg("amount", name="amount_avg"), Max("amount", name="amount_max")])

user_orders_lifetime = FeatureView("user_orders_lifetime", entity=user, source=orders,
    features=[Count(name="orders_total"), Sum("amount", name="spend_total"),
              Last("status", name="last_status")])

user_clicks_1h = FeatureView("user_clicks_1h", entity=user, source=clicks,
    window=Hopping(size="1h", every="5m"), ttl=timedelta(hours=2),
    features=[Count(name="clicks"), CountDistinct("page_id", name="unique_pages")])
'''

SQLITE_ORDERS = (
    'SqliteSource("orders", path="data/shop.db", table="orders",\n'
    '                      timestamp_field="created_at", cursor_field="updated_at",\n'
    '                      primary_key=["order_id"])'
)
POSTGRES_ORDERS = (
    'PostgresSource("orders", connection="app_db", table="public.orders",\n'
    '                        timestamp_field="created_at", cursor_field="updated_at",\n'
    '                        primary_key=["order_id"])'
)
COUNTRIES = ["fr", "de", "us", "gb", "es", "it", "nl", "se"]
PAGES = 200


def run_quickstart(
    directory: Path, *, users: int, days: int, console: Any, postgres: str | None = None
) -> None:
    """Create the demo project in ``directory`` and run it end to end."""
    from headwater.cli.progress import Progress
    from headwater.feature_store import FeatureStore
    from headwater.observability import configure_logging

    configure_logging()
    started = time.perf_counter()
    if directory.exists() and any(directory.iterdir()):
        raise HeadwaterError(
            f"{directory} exists and is not empty", fix="pick a new folder, e.g. demo2"
        )
    rng = random.Random(42)
    now = datetime.now(UTC).replace(microsecond=0)
    data = directory / "data"
    data.mkdir(parents=True)
    config = "project: demo\n"
    if postgres:
        config += f'connections:\n  app_db: {{type: postgres, dsn: "{postgres}"}}\n'
    (directory / "headwater.yaml").write_text(config)
    orders_kind = "PostgresSource" if postgres else "SqliteSource"
    (directory / "shop.py").write_text(
        DEFINITIONS.format(
            orders_kind=orders_kind,
            orders_source=POSTGRES_ORDERS if postgres else SQLITE_ORDERS,
        )
    )
    console.print(f"[bold]headwater quickstart[/] → {directory}")
    with Progress() as progress:
        with progress.task("generating data"):
            counts = _generate(data, rng, now, users=users, days=days, postgres=postgres)
        console.print(
            f"generated {users} users, {counts['orders']} orders, {counts['clicks']} clicks "
            f"over {days} days"
        )
        store = FeatureStore(directory)
        try:
            with progress.task("applying the definitions"):
                report = store.apply()
            console.print(f"applied {len(report.views)} feature views")
            for name in sorted(store.definitions.views):
                with progress.task(f"running {name}") as steps:
                    (result,) = store.run([name], on_step=steps.step, on_rows=steps.rows)
                progress.print(
                    console,
                    f"  ran {result.view}: {result.rows_in} rows in → {result.inserted} rows "
                    f"({result.seconds:.1f}s)",
                )
            with progress.task("materializing"):
                entities = sum(r.entities for r in store.materialize())
            console.print(f"materialized {entities} entity rows to the online store")
            _show_online(store, console)
            with progress.task("writing a point-in-time training set"):
                path = _training_set(store, rng, now, users, data / "training_set.parquet")
            console.print(f"wrote a point-in-time training set to {path}")
        finally:
            store.close()
    console.print(
        f"[green]done in {time.perf_counter() - started:.1f}s[/]. Try:\n"
        f"  headwater status --repo {directory}\n"
        f"  headwater get user_orders_lifetime:spend_total --entity user_id=1 --repo {directory}\n"
        f"  headwater serve --repo {directory}"
    )


def _generate(
    data: Path,
    rng: random.Random,
    now: datetime,
    *,
    users: int,
    days: int,
    postgres: str | None,
) -> dict[str, int]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    start = now - timedelta(days=days)
    span = int((now - start).total_seconds())
    # Profiles: one row per user, plus corrections written later for some users.
    profile_rows: dict[str, list[Any]] = {
        k: [] for k in ("user_id", "age", "country", "plan", "updated_at", "ingested_at")
    }
    for user_id in range(1, users + 1):
        updated = start + timedelta(seconds=rng.randrange(span // 4))
        versions = 2 if user_id % 10 == 0 else 1
        for version in range(versions):
            when = updated + timedelta(days=version * 3)
            profile_rows["user_id"].append(user_id)
            profile_rows["age"].append(rng.randint(18, 80))
            profile_rows["country"].append(rng.choice(COUNTRIES))
            profile_rows["plan"].append(rng.choice(["free", "free", "premium"]))
            profile_rows["updated_at"].append(when)
            profile_rows["ingested_at"].append(when + timedelta(minutes=5))
    pacsv.write_csv(pa.table(profile_rows), data / "profiles.csv")

    # Orders: a few per user.
    orders = []
    for order_id in range(1, users * 5 + 1):
        created = start + timedelta(seconds=rng.randrange(span))
        status = rng.choice(["paid", "paid", "paid", "refunded", "new"])
        orders.append(
            (
                order_id,
                rng.randint(1, users),
                round(rng.uniform(5, 300), 2),
                status,
                created,
                created + timedelta(minutes=rng.randint(0, 60)),
            )
        )
    if postgres:
        _orders_to_postgres(postgres, orders)
    else:
        _orders_to_sqlite(data / "shop.db", orders)

    # Clicks: hive-partitioned Parquet, one folder per day.
    per_day: dict[str, dict[str, list[Any]]] = {}
    clicks = users * 40
    for _ in range(clicks):
        when = start + timedelta(seconds=rng.randrange(span))
        bucket = per_day.setdefault(
            when.strftime("%Y-%m-%d"), {"user_id": [], "page_id": [], "event_timestamp": []}
        )
        bucket["user_id"].append(rng.randint(1, users))
        bucket["page_id"].append(rng.randint(1, PAGES))
        bucket["event_timestamp"].append(when)
    for day, columns in per_day.items():
        folder = data / "clicks" / f"date={day}"
        folder.mkdir(parents=True)
        table = pa.table(
            {
                "user_id": pa.array(columns["user_id"], pa.int64()),
                "page_id": pa.array(columns["page_id"], pa.int32()),
                "event_timestamp": pa.array(columns["event_timestamp"], pa.timestamp("ms", "UTC")),
            }
        )
        pq.write_table(table, folder / "part-0.parquet")
    return {"orders": len(orders), "clicks": clicks}


def _orders_to_sqlite(path: Path, orders: list[tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, user_id INTEGER, amount REAL, "
            "status TEXT, created_at TIMESTAMP, updated_at TIMESTAMP)"
        )
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
            [(*o[:4], o[4].isoformat(), o[5].isoformat()) for o in orders],
        )
    conn.close()


def _orders_to_postgres(dsn: str, orders: list[tuple[Any, ...]]) -> None:
    from headwater.errors import ConnectionFailed, MissingDependency
    from headwater.observability import redact

    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependency("psycopg", "postgres") from exc
    try:
        conn = psycopg.connect(dsn, autocommit=False)
    except psycopg.OperationalError as exc:
        raise ConnectionFailed(
            f"quickstart: cannot connect to PostgreSQL at {redact(dsn)}: "
            f"{str(exc).strip().splitlines()[-1]}",
            fix="check --postgres",
        ) from None
    with conn:
        conn.execute("DROP TABLE IF EXISTS public.orders")
        conn.execute(
            "CREATE TABLE public.orders (order_id bigint PRIMARY KEY, user_id bigint, "
            "amount numeric(10,2), status text, created_at timestamptz, updated_at timestamptz)"
        )
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY public.orders (order_id, user_id, amount, status, created_at, updated_at) "
                "FROM STDIN"
            ) as copy,
        ):
            for order in orders:
                copy.write_row(order)
    conn.close()


def _show_online(store: Any, console: Any) -> None:
    from rich.table import Table

    features = [
        "user_profile:country",
        "user_profile:is_premium",
        "user_orders_lifetime:orders_total",
        "user_orders_lifetime:spend_total",
        "user_orders_lifetime:last_status",
        "user_orders_daily:amount_sum",
        "user_clicks_1h:clicks",
    ]
    rows = [{"user_id": i} for i in (1, 2, 3, 4, 5)]
    result = store.get_online_features(features, rows).to_dict()
    table = Table(title="online features")
    for column in result:
        table.add_column(column)
    for index in range(len(rows)):
        table.add_row(*("∅" if result[c][index] is None else str(result[c][index]) for c in result))
    console.print(table)


def _training_set(store: Any, rng: random.Random, now: datetime, users: int, path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sample = 500
    entity = pa.table(
        {
            "user_id": pa.array([rng.randint(1, users) for _ in range(sample)], pa.int64()),
            "event_timestamp": pa.array(
                [now - timedelta(minutes=rng.randrange(14 * 24 * 60)) for _ in range(sample)],
                pa.timestamp("us", "UTC"),
            ),
        }
    )
    training = store.get_historical_features(
        entity,
        [
            "user_profile:age",
            "user_profile:country",
            "user_orders_daily:amount_sum",
            "user_orders_lifetime:spend_total",
            "user_clicks_1h:clicks",
            "user_clicks_1h:unique_pages",
        ],
    ).to_arrow()
    pq.write_table(training, path)
    return path
