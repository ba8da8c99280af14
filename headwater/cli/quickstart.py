"""``headwater quickstart``: a demo shop project with generated data, run end to end.

Generates users (a CSV of profiles with corrections), orders (a SQLite table, or a PostgreSQL
table when ``--postgres DSN`` is given) and click events (hive-partitioned Parquet), then
applies, runs, materializes, prints online features and writes a point-in-time training set.

The project is named after its folder (so two demos never share Redis keys or registry rows).
In PostgreSQL the demo only ever touches its own schema, ``headwater_demo_<name>``: refused
when it exists unless ``force``. A quickstart that fails removes what it made (the folder's
contents and the schema it created), so it can simply be run again.
"""

from __future__ import annotations

import random
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from headwater.cli.demo_data import create_schema, drop_schema, generate
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
    'PostgresSource("orders", connection="app_db", table="{schema}.orders",\n'
    '                        timestamp_field="created_at", cursor_field="updated_at",\n'
    '                        primary_key=["order_id"])'
)


def project_name(directory: Path) -> str:
    """The project name of a demo in ``directory``: the folder's name, made a valid name."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", directory.resolve().name) or "demo"
    return name if re.match(r"[A-Za-z_]", name) else f"demo_{name}"


def demo_schema(name: str) -> str:
    """The PostgreSQL schema of the demo project ``name`` (a plain, unquoted identifier)."""
    return f"headwater_demo_{re.sub(r'[^a-z0-9_]', '_', name.lower())}"[:63]


def run_quickstart(
    directory: Path,
    *,
    users: int,
    days: int,
    console: Any,
    postgres: str | None = None,
    force: bool = False,
) -> None:
    """Create the demo project in ``directory`` and run it end to end.

    Raises:
        HeadwaterError: ``directory`` is not empty, the demo schema exists (without ``force``),
            or a step failed; whatever this call made is removed first.
    """
    if users < 1:
        raise HeadwaterError(f"--users {users}: must be at least 1", fix="pass --users 1000")
    if days < 1:
        raise HeadwaterError(f"--days {days}: must be at least 1", fix="pass --days 14")
    if directory.exists() and any(directory.iterdir()):
        raise HeadwaterError(
            f"{directory} exists and is not empty", fix="pick a new folder, e.g. demo2"
        )
    existed = directory.exists()
    made_schema: list[str] = []
    try:
        _build(
            directory,
            users=users,
            days=days,
            console=console,
            postgres=postgres,
            force=force,
            made_schema=made_schema,
        )
    except BaseException:
        # Leave nothing half-made behind: the rerun must not be blocked by it.
        if existed:
            for child in directory.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(directory, ignore_errors=True)
        if postgres and made_schema:
            drop_schema(postgres, made_schema[0])
        raise


def _build(
    directory: Path,
    *,
    users: int,
    days: int,
    console: Any,
    postgres: str | None,
    force: bool,
    made_schema: list[str],
) -> None:
    from headwater.cli.progress import Progress
    from headwater.feature_store import FeatureStore
    from headwater.observability import configure_logging

    configure_logging()
    started = time.perf_counter()
    rng = random.Random(42)
    now = datetime.now(UTC).replace(microsecond=0)
    data = directory / "data"
    data.mkdir(parents=True)
    name = project_name(directory)
    schema = demo_schema(name)
    config = f"project: {name}\n"
    if postgres:
        config += f'connections:\n  app_db: {{type: postgres, dsn: "{postgres}"}}\n'
    (directory / "headwater.yaml").write_text(config)
    orders_kind = "PostgresSource" if postgres else "SqliteSource"
    (directory / "shop.py").write_text(
        DEFINITIONS.format(
            orders_kind=orders_kind,
            orders_source=POSTGRES_ORDERS.format(schema=schema) if postgres else SQLITE_ORDERS,
        )
    )
    console.print(f"[bold]headwater quickstart[/] → {directory} (project {name})")
    with Progress() as progress:
        if postgres:
            create_schema(postgres, schema, force=force)
            made_schema.append(schema)
        with progress.task("generating data"):
            counts = generate(
                data, rng, now, users=users, days=days, postgres=postgres, schema=schema
            )
        console.print(
            f"generated {users} users, {counts['orders']} orders, {counts['clicks']} clicks "
            f"over {days} days" + (f" (orders in PostgreSQL schema {schema})" if postgres else "")
        )
        store = FeatureStore(directory)
        try:
            with progress.task("applying the definitions"):
                report = store.apply()
            console.print(f"applied {len(report.views)} feature views")
            for view in sorted(store.definitions.views):
                with progress.task(f"running {view}") as steps:
                    (result,) = store.run(
                        [view], on_step=steps.step, on_rows=steps.rows, on_progress=steps.progress
                    )
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
