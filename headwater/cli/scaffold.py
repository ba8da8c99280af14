"""``headwater init``: a commented template project."""

from __future__ import annotations

from pathlib import Path

from headwater.errors import HeadwaterError

CONFIG_TEMPLATE = """\
# headwater project configuration. A file holding only `project:` runs everything embedded:
# DuckDB engine, Delta Lake offline store under data/offline/, SQLite online store and registry.
project: {name}

# Named connections used by sources. Values may use ${{ENV_VAR}} or ${{ENV_VAR:-default}}.
# connections:
#   app_db: {{type: postgres, dsn: "postgresql://app:${{APP_DB_PASSWORD}}@127.0.0.1:5432/shop"}}

# registry: {{type: sqlite, path: .headwater/registry.db}}       # or {{type: postgres, dsn: ...}}
# offline_store: {{type: delta, path: data/offline}}             # or {{type: parquet, path: ...}}
# online_store: {{type: sqlite, path: data/online.db}}           # or {{type: redis, url: ...}}
# engine: {{type: duckdb, memory_limit: 2GB}}
"""

DEFINITIONS_TEMPLATE = '''\
"""Feature definitions. Every .py file of the project folder is read by `headwater apply`."""

from datetime import timedelta

from headwater import Count, Entity, FeatureView, FileSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"], description="A customer")

# A folder of Parquet files; hive partitions (date=2024-01-01/) become columns.
events = FileSource("events", path="data/events/", format="parquet",
                    timestamp_field="event_timestamp")

# Daily aggregates per user; each row's event_timestamp is the end of its day (UTC).
user_events_daily = FeatureView(
    "user_events_daily",
    entity=user,
    source=events,
    window=Tumbling("1d"),
    ttl=timedelta(days=2),
    features=[Count(name="events"), Sum("amount", name="amount_sum")],
)
'''


def write_template(directory: Path, *, force: bool = False) -> list[Path]:
    """Write the template project into ``directory``; refuse a non-empty folder unless forced."""
    if directory.exists() and any(directory.iterdir()) and not force:
        raise HeadwaterError(
            f"{directory} exists and is not empty", fix="choose a new folder or pass --force"
        )
    (directory / "data" / "events").mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in directory.resolve().name)
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = f"p_{name}"
    files = {
        directory / "headwater.yaml": CONFIG_TEMPLATE.format(name=name),
        directory / "features.py": DEFINITIONS_TEMPLATE,
        directory / ".gitignore": "data/\n.headwater/\n",
    }
    for path, text in files.items():
        path.write_text(text)
    sample = directory / "data" / "events" / "sample.parquet"
    _write_sample(sample)
    return [*files, sample]


def _write_sample(path: Path) -> None:
    """A few example events so `headwater apply && headwater run` work at once."""
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa
    import pyarrow.parquet as pq

    # Whole past days, so the daily windows are complete whatever the time of day.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    times = [today - timedelta(hours=h) for h in (38, 21, 26, 4, 12)]
    table = pa.table(
        {
            "user_id": pa.array([1, 1, 2, 1, 2], pa.int64()),
            "amount": pa.array([12.5, 3.0, 40.0, 7.25, 1.0]),
            "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(table, path)
