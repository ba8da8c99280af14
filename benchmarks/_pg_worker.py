"""One contender of the PostgreSQL extraction benchmark, run in a process of its own.

    python benchmarks/_pg_worker.py CONTENDER --dsn URL --table NAME --columns a,b,... --workdir DIR

Runs under headwater's virtualenv (``headwater``, ``headwater-*``) or under the peers'
virtualenv (``dlt-*``, ``pandas``), so only the standard library is imported at module level.
Times only the read itself (imports and set-up excluded; the ``dlt-run-*`` contenders are whole
processes, timed by the caller) and prints one JSON line:
``{"rows": N, "seconds": S, "cpu_s": C, "detail": "...", "rss_before": BYTES}``: ``cpu_s`` is
the process's CPU time (all threads) during the read and ``rss_before`` the peak RSS reached
before it started. The caller measures the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

Result = tuple[int, float, str]
PARTITIONS = 2  # one range per core of the 2-core reference machine
_rss_before = 0
_cpu_before = 0.0
_cpu_s = 0.0


def _preimport(*modules: str) -> None:
    """Import the drivers a read would import lazily, so that the timed part is the read alone."""
    import contextlib
    import importlib

    for name in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _started() -> float:
    """Mark the start of the timed read: remember the peak RSS so far, return the clock."""
    global _rss_before, _cpu_before
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _rss_before = usage.ru_maxrss * 1024  # KiB on Linux
    _cpu_before = usage.ru_utime + usage.ru_stime
    return time.perf_counter()


def _stopped(started: float) -> float:
    """Mark the end of the timed read: remember the CPU time it took, return its wall time."""
    global _cpu_s
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _cpu_s = usage.ru_utime + usage.ru_stime - _cpu_before
    return seconds


# ---------------------------------------------------------------- headwater
class _CaptureRegister:
    """A DuckDB connection that also keeps what a connector registers on it.

    ``SourceConnector.scan`` registers the source's record-batch stream as a DuckDB view; keeping
    a handle on it lets the benchmark drain the stream itself instead of through DuckDB.
    """

    def __init__(self, con: Any) -> None:
        self._con = con
        self.registered: dict[str, Any] = {}

    def register(self, name: str, obj: Any) -> Any:
        self.registered[name] = obj
        return self._con.register(name, obj)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def headwater_project(project: Path, dsn: str, table: str, columns: list[str]) -> Path:
    """A project folder with the benchmark table as a source and a projection view (entity key
    ``id``, event time ``event_at``, every other column a feature), not applied yet."""
    project.mkdir(parents=True)
    (project / "headwater.yaml").write_text(
        f"project: bench\nconnections:\n  bench: {{type: postgres, dsn: {json.dumps(dsn)}}}\n"
    )
    features = {c: c for c in columns if c not in ("id", "event_at")}
    (project / "features.py").write_text(
        "from headwater import Entity, FeatureView, PostgresSource\n\n"
        'row = Entity("row", join_keys=["id"])\n'
        f'bench = PostgresSource("bench", connection="bench", table="public.{table}",\n'
        '                       timestamp_field="event_at")\n'
        'bench_features = FeatureView("bench_features", entity=row, source=bench,\n'
        f"                             features={features!r}, online=False)\n"
    )
    return project


def _headwater_project(args: argparse.Namespace) -> Path:
    """A throw-away project folder in the work folder (see :func:`headwater_project`)."""
    folder = Path(args.workdir) / "project"
    return headwater_project(folder, args.dsn, args.table, args.columns.split(","))


def headwater_extract(args: argparse.Namespace, **options: Any) -> Result:
    """``open_connector(source).scan(con)``, then drain the record-batch stream it registered.

    ``options`` are further ``PostgresSource`` arguments (e.g. a partitioned read).
    """
    from headwater.config import load_config
    from headwater.connectors import open_connector
    from headwater.definitions import PostgresSource
    from headwater.engines.duckdb import DuckDBEngine

    _preimport("psycopg", "adbc_driver_postgresql.dbapi", "pyarrow.compute")
    config = load_config(_headwater_project(args))
    source = PostgresSource(
        "bench",
        connection="bench",
        table=f"public.{args.table}",
        timestamp_field="event_at",
        **options,
    )
    connector = open_connector(source, config)
    con = DuckDBEngine(config).connect()
    capture = _CaptureRegister(con)
    rows = batches = 0
    started = _started()
    scan = connector.scan(capture, checkpoint=None)
    stream = capture.registered.get(scan.relation)
    if stream is not None and hasattr(stream, "read_next_batch"):
        path = "RecordBatchReader registered by scan()"
    elif stream is not None and hasattr(stream, "to_batches"):
        path = f"{type(stream).__name__} registered by scan()"
        stream = stream.to_batches()
    else:  # not a registered stream (e.g. a DuckDB table function): read it through DuckDB
        path = f"DuckDB relation {scan.relation}"
        stream = con.sql(f"SELECT * FROM {scan.relation}").to_arrow_reader()
    for batch in stream:
        rows += batch.num_rows
        batches += 1
    seconds = _stopped(started)
    con.close()
    return rows, seconds, f"{path}; {batches} batches"


def headwater_e2e(args: argparse.Namespace) -> Result:
    """``FeatureStore.run()`` of a projection view over the table into the Delta offline store."""
    from headwater import FeatureStore

    _preimport("psycopg", "adbc_driver_postgresql.dbapi", "pyarrow.compute", "deltalake")
    project = _headwater_project(args)
    with FeatureStore(project) as store:
        store.apply()
        started = _started()
        (result,) = store.run(["bench_features"])
        seconds = _stopped(started)
    return (
        result.rows_out,
        seconds,
        f"{result.rows_in:,} rows read, {result.inserted:,} inserted into the Delta table",
    )


# ---------------------------------------------------------------- dlt
def _dlt_env(args: argparse.Namespace) -> None:
    work = Path(args.workdir)
    os.environ.setdefault("DLT_DATA_DIR", str(work / "dlt-data"))
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")


def _sqlalchemy_url(dsn: str, driver: str) -> str:
    scheme, rest = dsn.split("://", 1)
    return f"postgresql+{driver}://{rest}" if scheme in ("postgres", "postgresql") else dsn


def _dlt_table(args: argparse.Namespace, backend: str, backend_kwargs: dict[str, Any]) -> Any:
    from dlt.sources.sql_database import sql_table

    return sql_table(
        credentials=_sqlalchemy_url(args.dsn, "psycopg2"),
        table=args.table,
        schema="public",
        backend=backend,
        backend_kwargs=backend_kwargs or None,
    )


def _dlt_iterate(backend: str, **backend_kwargs: Any) -> Callable[[argparse.Namespace], Result]:
    def run(args: argparse.Namespace) -> Result:
        _dlt_env(args)
        _preimport("dlt", "dlt.sources.sql_database", "sqlalchemy", "psycopg2", "connectorx")

        rows = items = 0
        started = _started()
        for item in _dlt_table(args, backend, backend_kwargs):
            rows += len(item)
            items += 1
        seconds = _stopped(started)
        return rows, seconds, f"iterated the resource: {items} Arrow table(s)"

    return run


def _dlt_pipeline(args: argparse.Namespace) -> Any:
    """A dlt pipeline into a new local filesystem destination in the work folder."""
    import dlt

    work = Path(args.workdir)
    return dlt.pipeline(
        pipeline_name="bench",
        destination=dlt.destinations.filesystem(bucket_url=(work / "lake").as_uri()),
        dataset_name="bench",
        pipelines_dir=str(work / "pipelines"),
    )


def dlt_filesystem(args: argparse.Namespace) -> Result:
    """A dlt pipeline run (extract, normalize, load) into a local filesystem destination."""
    _dlt_env(args)
    _preimport("dlt.sources.sql_database", "sqlalchemy", "psycopg2", "pyarrow.parquet")
    pipeline = _dlt_pipeline(args)
    started = _started()
    pipeline.run(_dlt_table(args, "pyarrow", {}), loader_file_format="parquet")
    seconds = _stopped(started)
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return int(counts.get(args.table, 0)), seconds, "pipeline.run, Parquet files"


def _dlt_run(backend: str, **backend_kwargs: Any) -> Callable[[argparse.Namespace], Result]:
    """A whole dlt pipeline process: imports, ``pipeline.run`` (extract, normalize, load)
    into a local filesystem destination as Parquet. The caller times the process."""

    def run(args: argparse.Namespace) -> Result:
        started = _started()
        _dlt_env(args)
        pipeline = _dlt_pipeline(args)
        pipeline.run(_dlt_table(args, backend, backend_kwargs), loader_file_format="parquet")
        seconds = _stopped(started)
        counts = pipeline.last_trace.last_normalize_info.row_counts
        return int(counts.get(args.table, 0)), seconds, "whole process: pipeline.run, Parquet"

    return run


# ---------------------------------------------------------------- pandas
def pandas_read_sql(args: argparse.Namespace) -> Result:
    import pandas as pd
    import sqlalchemy as sa

    _preimport("psycopg")
    engine = sa.create_engine(_sqlalchemy_url(args.dsn, "psycopg"))
    query = f"SELECT {args.columns} FROM public.{args.table}"
    started = _started()
    frame = pd.read_sql(sa.text(query), engine)
    seconds = _stopped(started)
    rows = len(frame)
    engine.dispose()
    return rows, seconds, "DataFrame held in memory"


CONTENDERS: dict[str, Callable[[argparse.Namespace], Result]] = {
    "headwater": headwater_extract,
    "headwater-partitioned": partial(
        headwater_extract, partition_column="id", num_partitions=PARTITIONS
    ),
    "headwater-e2e": headwater_e2e,
    "dlt-pyarrow": _dlt_iterate("pyarrow"),
    "dlt-connectorx": _dlt_iterate("connectorx"),
    "dlt-connectorx-stream": _dlt_iterate("connectorx", return_type="arrow_stream"),
    "dlt-filesystem": dlt_filesystem,
    "dlt-run-pyarrow": _dlt_run("pyarrow"),
    "dlt-run-connectorx": _dlt_run("connectorx"),
    "dlt-run-connectorx-stream": _dlt_run("connectorx", return_type="arrow_stream"),
    "pandas": pandas_read_sql,
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contender", choices=sorted(CONTENDERS))
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--columns", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    rows, seconds, detail = CONTENDERS[args.contender](args)
    report = {"rows": rows, "seconds": seconds, "cpu_s": _cpu_s, "detail": detail}
    print(json.dumps({**report, "rss_before": _rss_before}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
