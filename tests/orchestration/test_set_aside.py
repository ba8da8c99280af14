"""Rows a batch run cannot place (no join key or no event time) go to the quarantine table with
their reason — rows in = rows written + quarantined — and a run that loses its key or time
column, or sets aside more than ``runs.max_skipped_ratio`` of its rows, fails."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
import yaml

import headwater
from headwater.errors import QualityFailed, RunFailed
from headwater.orchestration.runner import cursor_checkpoint
from headwater.quality.quarantine import read_quarantine
from tests.helpers import TS, offline_rows, write_project

BASE = datetime(2024, 1, 1, tzinfo=UTC)

DEFS = """
from headwater import Entity, FeatureView, FileSource, checks

user = Entity("user", join_keys=["user_id"])
events = FileSource("events", path="data/events.{fmt}", timestamp_field="ts"{more})
spend = FeatureView("spend", entity=user, source=events, features={{"amount": "amount"}})
"""


def events(rows: list[tuple[Any, Any, float]]) -> pa.Table:
    """``(user_id, hours after BASE or None, amount)`` rows."""
    return pa.table(
        {
            "user_id": pa.array([r[0] for r in rows], pa.int64()),
            "ts": pa.array(
                [None if r[1] is None else BASE + timedelta(hours=r[1]) for r in rows], TS
            ),
            "amount": pa.array([r[2] for r in rows], pa.float64()),
        }
    )


ROWS = [
    (1, 0, 1.0),
    (2, 1, 2.0),
    (None, 2, 3.0),  # no join key
    (3, None, 4.0),  # no event time
    (None, None, 5.0),  # neither
    (4, 3, 6.0),
]


def store_for(tmp_path: Path, more: str = "", config: dict[str, Any] | None = None) -> Any:
    write_project(
        tmp_path,
        DEFS.format(fmt="parquet", more=more),
        data={"data/events.parquet": events(ROWS)},
    )
    if config:
        path = tmp_path / "headwater.yaml"
        path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | config))
    store = headwater.FeatureStore(tmp_path)
    store.apply()
    return store


def reasons(store: Any) -> list[tuple[Any, str, str]]:
    table = read_quarantine(store.offline, "spend")
    assert table is not None
    return sorted((r["amount"], r["_check"], r["_reason"]) for r in table.to_pylist())


EXPECTED = [
    (3.0, "not_null(user_id)", "null join key user_id"),
    (4.0, "not_null(ts)", "null event time ts"),
    (5.0, "not_null(user_id)", "null join key user_id; null event time ts"),
]


@pytest.mark.parametrize(
    "more",
    ["", ', checks=[checks.not_null("user_id", severity="quarantine")]'],
    ids=["no-checks", "not-null-check-declared"],
)
def test_unplaceable_rows_are_quarantined_with_their_reason(tmp_path: Path, more: str) -> None:
    store = store_for(tmp_path, more)
    (result,) = store.run(["spend"])
    assert result.rows_in == len(ROWS)
    # Every row read is somewhere: written, or quarantined (each once).
    assert result.rows_out + result.rows_quarantined == result.rows_in
    assert len(offline_rows(store, "spend")) == result.rows_out == 3
    table = read_quarantine(store.offline, "spend")
    assert table is not None and table.num_rows == result.rows_quarantined == 3
    if not more:
        assert reasons(store) == EXPECTED
    else:  # the declared check took the keyless rows first; the timeless one is still kept
        assert [r[0] for r in reasons(store)] == [3.0, 4.0, 5.0]
        assert (4.0, "not_null(ts)", "null event time ts") in reasons(store)
    store.run(["spend"])  # a rerun stores nothing twice
    table = read_quarantine(store.offline, "spend")
    assert table is not None and table.num_rows == 3
    store.close()


@pytest.mark.postgres
def test_a_streamed_database_read_quarantines_unplaceable_rows(tmp_path: Path, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.events (user_id BIGINT, ts TIMESTAMPTZ, amount FLOAT8)")
        for user, hours, amount in ROWS:
            ts = None if hours is None else BASE + timedelta(hours=hours)
            conn.execute("INSERT INTO public.events VALUES (%s, %s, %s)", (user, ts, amount))
    config = {"project": "t", "connections": {"app_db": {"type": "postgres", "dsn": pg_dsn}}}
    (tmp_path / "headwater.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "defs.py").write_text(
        textwrap.dedent(
            """
            from headwater import Entity, FeatureView, PostgresSource

            user = Entity("user", join_keys=["user_id"])
            events = PostgresSource(
                "events", connection="app_db", table="public.events", timestamp_field="ts"
            )
            spend = FeatureView("spend", entity=user, source=events, features={"amount": "amount"})
            """
        )
    )
    with headwater.FeatureStore(tmp_path) as store:
        store.apply()
        (result,) = store.run(["spend"])
        assert (result.rows_in, result.rows_out, result.rows_quarantined) == (6, 3, 3)
        assert reasons(store) == EXPECTED


def test_a_lost_key_column_fails_the_run_naming_it(tmp_path: Path) -> None:
    csv = tmp_path / "data" / "events.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("user_id,ts,amount\n1,2024-01-01T00:00:00Z,1.5\n2,2024-01-01T01:00:00Z,2.5\n")
    write_project(tmp_path, DEFS.format(fmt="csv", more=""))
    store = headwater.FeatureStore(tmp_path)
    store.apply()
    store.close()
    # The reader options change so the file reads as one column.
    (tmp_path / "defs.py").write_text(
        textwrap.dedent(DEFS.format(fmt="csv", more=', options={"delim": ";"}')).lstrip()
    )
    store = headwater.FeatureStore(tmp_path)
    with pytest.raises(QualityFailed) as caught:
        store.run(["spend"])
    message = str(caught.value)
    assert "source 'events' has no column 'ts' (the event time) any more" in message
    assert "reader options" in message and "\n" not in message
    assert offline_rows(store, "spend") == []
    store.close()


def test_a_run_that_places_no_row_fails(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        DEFS.format(fmt="parquet", more=""),
        data={"data/events.parquet": events([(None, 1, 1.0), (2, None, 2.0)])},
    )
    with headwater.FeatureStore(tmp_path) as store:
        store.apply()
        with pytest.raises(RunFailed, match=r"none of the 2 rows read has both a join key"):
            store.run(["spend"])
        assert offline_rows(store, "spend") == []
        assert store.registry.last_run("spend", status=None).status == "failed"


def test_max_skipped_ratio_fails_a_run_over_it(tmp_path: Path) -> None:
    store = store_for(tmp_path, config={"runs": {"max_skipped_ratio": 0.25}})
    with pytest.raises(RunFailed) as caught:
        store.run(["spend"])
    assert "3 of 6 rows read (50%) were set aside" in str(caught.value)
    assert "runs.max_skipped_ratio=0.25" in str(caught.value)
    assert store.registry.get_checkpoint(cursor_checkpoint("spend")) is None
    store.close()
    store = store_for(tmp_path / "lenient", config={"runs": {"max_skipped_ratio": 0.5}})
    (result,) = store.run(["spend"])  # exactly at the limit: not over it
    assert result.rows_quarantined == 3
    store.close()


@pytest.mark.postgres
def test_rows_read_are_told_while_a_database_is_read(tmp_path: Path, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.events AS SELECT i % 7 AS user_id, "
            "timestamptz '2024-01-01' + i * interval '1 second' AS ts, i::float8 AS amount "
            "FROM generate_series(1, 250000) AS i"
        )
    config = {
        "project": "t",
        "connections": {"app_db": {"type": "postgres", "dsn": pg_dsn}},
    }
    (tmp_path / "headwater.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "defs.py").write_text(
        textwrap.dedent(
            """
            from headwater import Entity, FeatureView, PostgresSource, Sum

            user = Entity("user", join_keys=["user_id"])
            events = PostgresSource(
                "events", connection="app_db", table="public.events", timestamp_field="ts"
            )
            spend = FeatureView("spend", entity=user, source=events, features=[Sum("amount")])
            """
        )
    )
    told: list[int] = []
    with headwater.FeatureStore(tmp_path) as store:
        store.apply()
        (result,) = store.run(["spend"], on_rows=told.append)
    assert result.rows_in == 250_000
    assert len(told) > 2 and told == sorted(told) and told[-1] == 250_000
