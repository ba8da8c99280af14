"""PostgreSQL connection pool: many small incremental runs, with and without pooled connections.

A table of a few thousand rows gets a few new rows before each run; each run reads from its
cursor (describe on psycopg, COPY on ADBC) and merges the new rows into the Delta offline store.
Without the pool every read opens a psycopg and an ADBC connection and closes them afterwards
(what headwater did before pooling); with it the same two sessions serve every run. Writes the
"PostgreSQL connection pool" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import (
    WORK_DIR,
    machine_facts,
    markdown_table,
    package_versions,
    say,
    write_doc_section,
)

DESCRIPTION = "PostgreSQL connection pool: N small incremental runs, pooled and not"
SECTION = "PostgreSQL connection pool"
TABLE = "pool_bench"

DEFS = """
from headwater import Entity, FeatureView, PostgresSource

item = Entity("item", join_keys=["id"])
events = PostgresSource("events", connection="bench", table="public.pool_bench",
                        timestamp_field="event_at", cursor_field="updated_at",
                        primary_key=["id"])
event_facts = FeatureView("event_facts", entity=item, source=events,
                          features={"amount": "amount", "category": "category"}, online=False)
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--runs", type=int, default=50, help="incremental runs per mode (50)")
    parser.add_argument("--rows", type=int, default=5_000, help="rows in the table at first")
    parser.add_argument("--new", type=int, default=10, help="rows inserted before each run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both modes (median)")
    parser.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--database", default="headwater_bench")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    return parser.parse_args(argv)


def server_version(args: argparse.Namespace) -> str:
    import psycopg

    with psycopg.connect(dsn(args, "postgres")) as con:
        row = con.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def dsn(args: argparse.Namespace, database: str) -> str:
    return f"postgresql://{args.user}@{args.host}:{args.port}/{database}"


def reset_table(args: argparse.Namespace) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn(args, "postgres"), autocommit=True) as admin:
        if not admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [args.database]
        ).fetchone():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.database)))
    with psycopg.connect(dsn(args, args.database), autocommit=True) as con:
        con.execute(f"DROP TABLE IF EXISTS {TABLE}")
        con.execute(
            f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, amount numeric(12, 2), "
            "category text, event_at timestamptz, updated_at timestamptz)"
        )
        insert(con, 1, args.rows)


def insert(con: Any, first: int, count: int) -> None:
    con.execute(
        f"INSERT INTO {TABLE} SELECT g, g %% 1000 / 10.0, 'c' || g %% 7, "
        "timestamptz '2024-01-01' + g * interval '1 minute', clock_timestamp() "
        "FROM generate_series(%s::bigint, %s::bigint) AS g",
        [first, first + count - 1],
    )


@contextmanager
def unpooled() -> Any:
    """Every read opens its own psycopg and ADBC connections and closes them (no pool)."""
    import psycopg

    import headwater.connectors.postgres.reader as postgres
    from headwater.connectors.postgres import pool as pg_pool
    from headwater.connectors.postgres.session import session_conninfo

    @contextmanager
    def direct(config: Any, *, what: str) -> Any:
        conn = psycopg.connect(session_conninfo(config), autocommit=True)
        pg_pool._configure(conn)
        try:
            yield conn
        finally:
            conn.close()

    def close(self: Any, conn: Any, *, reusable: bool) -> None:
        conn.close()

    saved = (postgres.pooled, pg_pool.pooled, pg_pool.ReaderPool.release)
    postgres.pooled, pg_pool.pooled = direct, direct  # type: ignore[assignment]
    pg_pool.ReaderPool.release = close  # type: ignore[method-assign]
    try:
        yield
    finally:
        postgres.pooled, pg_pool.pooled, pg_pool.ReaderPool.release = saved


def one_mode(args: argparse.Namespace, pooled: bool, work: Path) -> tuple[list[float], int]:
    """Seconds of each incremental run, and server sessions opened, for one mode."""
    import psycopg

    from headwater import FeatureStore

    reset_table(args)
    project = work / ("pooled" if pooled else "unpooled")
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    name = f"hwbench-{'pool' if pooled else 'nopool'}-{os.getpid()}"
    url = dsn(args, args.database)
    (project / "headwater.yaml").write_text(
        f"project: bench\nconnections:\n  bench: {{type: postgres, dsn: '{url}', "
        f"options: {{application_name: {name}}}}}\n"
    )
    (project / "defs.py").write_text(DEFS)
    seconds: list[float] = []
    with psycopg.connect(dsn(args, args.database), autocommit=True) as con:
        sessions = con.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", [args.database]
        ).fetchone()
        store = FeatureStore(project)
        store.apply()
        store.run()  # the first, full read: not timed
        context = unpooled() if not pooled else _nothing()
        with context:
            for i in range(args.runs):
                insert(con, args.rows + 1 + i * args.new, args.new)
                started = time.perf_counter()
                (result,) = store.run()
                seconds.append(time.perf_counter() - started)
                if result.rows_in < args.new:
                    raise RuntimeError(f"run {i} read {result.rows_in} rows")
        store.close()
        deadline = time.monotonic() + 10  # sessions count once their backend has exited
        while (
            time.monotonic() < deadline
            and con.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s", [name]
            ).fetchone()
        ):
            time.sleep(0.05)
        time.sleep(0.5)
        after = con.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", [args.database]
        ).fetchone()
    opened = int(after[0]) - int(sessions[0]) if after and sessions else -1
    return seconds, opened


@contextmanager
def _nothing() -> Any:
    yield


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    facts = machine_facts()
    facts["PostgreSQL"] = server_version(args)
    versions = ["headwater", "psycopg", "psycopg-pool", "adbc-driver-postgresql", "deltalake"]
    ours = package_versions(sys.executable, versions)
    facts["headwater side"] = ", ".join(f"{k} {v}" for k, v in ours.items())
    start_load = os.getloadavg()[0]
    work = WORK_DIR / f"pool-{os.getpid()}"
    results: dict[bool, list[tuple[list[float], int]]] = {True: [], False: []}
    try:
        for round_ in range(args.rounds):
            for pooled in (False, True) if round_ % 2 == 0 else (True, False):
                say(f"round {round_ + 1}: {'pooled' if pooled else 'unpooled'}")
                results[pooled].append(one_mode(args, pooled, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    facts["load average (1 min)"] = (
        f"{start_load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    text = report(args, results, facts)
    print(text)
    if not args.no_doc:
        write_doc_section(SECTION, text)
        say(f"wrote the {SECTION!r} section of docs/benchmarks.md")
    return 0


def report(
    args: argparse.Namespace,
    results: dict[bool, list[tuple[list[float], int]]],
    facts: dict[str, str],
) -> str:
    rows = []
    totals = {}
    for pooled in (False, True):
        runs = results[pooled]
        total = statistics.median(sum(s) for s, _ in runs)
        per_run = statistics.median(statistics.median(s) for s, _ in runs)
        sessions = statistics.median(o for _, o in runs)
        totals[pooled] = total
        rows.append(
            [
                "pooled" if pooled else "a connection per read",
                f"{total:.2f}",
                f"{per_run * 1000:.1f}",
                " / ".join(f"{sum(s):.2f}" for s, _ in runs),
                f"{sessions:.0f}",
            ]
        )
    table = markdown_table(
        ["mode", f"{args.runs} runs (s)", "median run (ms)", "rounds (s)", "sessions opened"],
        rows,
        "lrrrr",
    )
    machine = "\n".join(f"- {k}: {v}" for k, v in facts.items())
    intro = textwrap.fill(
        f"{args.runs} incremental runs of a projection view over a {args.rows:,}-row table "
        f"({args.new} new rows before each run; cursor `updated_at`) into the Delta offline "
        f"store, in one process; median of {args.rounds} rounds, the two modes alternating. "
        "*A connection per read* is headwater without its pools: each read opens its own "
        "connections (psycopg to describe it, ADBC to copy it) and closes them. "
        "*Sessions opened* counts the server's new sessions in the database "
        "(`pg_stat_database.sessions`) from `apply` to `close()`, the untimed first run "
        "included. The server is on the same machine, over TCP with trust authentication: the "
        "cheapest connection there is. TLS, a password exchange or a network in between make "
        "each connection dearer, and the pool saves more.",
        width=100,
    )
    gain = totals[False] / totals[True] if totals[True] else 0.0
    return (
        f"{intro}\n\nRerun with `scripts/bench postgres_pool` (`--runs`, `--rounds`, `--rows`, "
        f"`--new`).\n\n### Machine\n\n{machine}\n\n### Results\n\n{table}\n\n"
        f"Pooled, the runs took {gain:.2f}x less time.\n"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
