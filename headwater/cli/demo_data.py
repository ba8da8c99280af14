"""The data of the ``headwater quickstart`` demo: generated users, orders and clicks.

Orders go to a SQLite file, or to PostgreSQL in the demo's own schema (created here, refused
when it exists unless forced, dropped again when the quickstart fails): no other table of the
database is touched.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from headwater.errors import HeadwaterError

COUNTRIES = ["fr", "de", "us", "gb", "es", "it", "nl", "se"]
PAGES = 200


def generate(
    data: Path,
    rng: random.Random,
    now: datetime,
    *,
    users: int,
    days: int,
    postgres: str | None,
    schema: str,
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
        _orders_to_postgres(postgres, schema, orders)
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


def _connect(dsn: str) -> Any:
    from headwater.errors import ConnectionFailed, MissingDependency
    from headwater.observability import redact

    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependency("psycopg", "postgres") from exc
    try:
        return psycopg.connect(dsn, autocommit=False)
    except psycopg.OperationalError as exc:
        raise ConnectionFailed(
            f"quickstart: cannot connect to PostgreSQL at {redact(dsn)}: "
            f"{str(exc).strip().splitlines()[-1]}",
            fix="check --postgres",
        ) from None


def create_schema(dsn: str, schema: str, *, force: bool) -> None:
    """Create the demo's own schema; an existing one is refused unless ``force``."""
    from psycopg import sql

    with _connect(dsn) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        if found and not force:
            raise HeadwaterError(
                f"quickstart: the PostgreSQL schema {schema} already exists (an earlier demo "
                "of this name)",
                fix="pass --force to replace it, or pick another folder name",
            )
        if found:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def drop_schema(dsn: str, schema: str) -> None:
    """Remove the schema a failed quickstart created (best effort: the error that made it
    fail is the one to report)."""
    import contextlib

    from psycopg import sql

    with contextlib.suppress(Exception), _connect(dsn) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _orders_to_postgres(dsn: str, schema: str, orders: list[tuple[Any, ...]]) -> None:
    """The orders table, in the demo's own schema (never a table of the user's)."""
    from psycopg import sql

    table = sql.Identifier(schema, "orders")
    with _connect(dsn) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (order_id bigint PRIMARY KEY, user_id bigint, "
                "amount numeric(10,2), status text, created_at timestamptz, "
                "updated_at timestamptz)"
            ).format(table)
        )
        with (
            conn.cursor() as cur,
            cur.copy(
                sql.SQL(
                    "COPY {} (order_id, user_id, amount, status, created_at, updated_at) FROM STDIN"
                ).format(table)
            ) as copy,
        ):
            for order in orders:
                copy.write_row(order)
