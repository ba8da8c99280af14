"""One contender of the data-quality benchmark, run in a process of its own.

    python benchmarks/_quality_worker.py CONTENDER --data FILE.parquet [--workdir DIR]

Runs under headwater's virtualenv (``headwater*``) or the peers' one (``gx``, ``pandera-*``),
so only the standard library (and the plain values of ``_quality_spec``) is imported at module
level. Each contender declares the eight checks of ``_quality_spec`` in its own tool, reads the
Parquet file and evaluates them, and prints one JSON line::

    {"rows": N, "read_s": S | null, "check_s": S, "cpu_s": C, "rss_before": BYTES,
     "rss_read": BYTES, "results": {KEY: {"passed": B, "failed": N | null, "observed": V}},
     "quarantined": N | null, "detail": "..."}

``read_s`` is the read into the tool's own frame (``null`` when the tool reads the file as part
of the checks), ``check_s`` the evaluation, ``cpu_s`` the process's CPU time (all threads)
during it; ``rss_before`` is the peak RSS after imports and set-up, ``rss_read`` after the read.
``failed`` counts the offending rows of a row-level check; ``observed`` is what a batch-level
check saw (rows, newest ``created_at`` in epoch ms) when the tool reports it. The caller
measures the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _quality_spec as spec

Results = dict[str, dict[str, Any]]
CUTOFF = datetime.fromtimestamp((spec.NOW_MS - spec.MAX_AGE_MS) / 1000, UTC)
"""Freshness as a bound: the newest ``created_at`` must be at or after this instant."""


class Clock:
    """Times the read and the checks, with the process's CPU time and peak RSS around them."""

    def __init__(self) -> None:
        self.rss_before = self._rss()
        self.rss_read = 0
        self.read_s: float | None = None
        self.check_s = 0.0
        self.cpu_s = 0.0
        self._started = 0.0
        self._cpu = 0.0

    @staticmethod
    def _rss() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    @staticmethod
    def _cpu_now() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def read(self, load: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        data = load()
        self.read_s = time.perf_counter() - started
        self.rss_read = self._rss()
        return data

    def start(self) -> None:
        self.rss_read = self.rss_read or self._rss()
        self._cpu = self._cpu_now()
        self._started = time.perf_counter()

    def stop(self) -> None:
        self.check_s = time.perf_counter() - self._started
        self.cpu_s = self._cpu_now() - self._cpu


# ---------------------------------------------------------------- headwater
def headwater(path: Path, workdir: Path, mode: str, clock: Clock) -> tuple[Results, dict[str, Any]]:
    """``evaluate()`` over the Parquet file (``parquet``) or over a table loaded first
    (``table``); ``quarantine`` also materialises the quarantined rows as Arrow."""
    import duckdb

    from headwater import checks
    from headwater.engines.duckdb import default_memory_limit
    from headwater.quality import evaluate

    severity = "quarantine" if mode == "quarantine" else "warn"
    rules = [
        checks.not_null("user_id", severity=severity),
        checks.unique("order_id", severity=severity),
        checks.between("amount", spec.AMOUNT_MIN, spec.AMOUNT_MAX, severity=severity),
        checks.in_set("status", list(spec.STATUSES), severity=severity),
        checks.matches("email", spec.EMAIL_PATTERN, severity=severity),
        checks.max_length("country", spec.COUNTRY_MAX_LENGTH, severity=severity),
        checks.row_count(min=spec.ROW_COUNT_MIN, max=spec.ROW_COUNT_MAX, severity="warn"),
        checks.freshness(spec.MAX_AGE_MS, column="created_at", severity="warn"),
    ]
    # The settings of headwater's DuckDB engine (DuckDBEngine.connect), with its defaults.
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    workdir.mkdir(parents=True, exist_ok=True)
    con.execute("SET temp_directory = ?", [str(workdir)])
    con.execute("SET memory_limit = ?", [default_memory_limit()])
    con.execute("SET preserve_insertion_order = false")
    parquet = "read_parquet(" + "'" + str(path).replace("'", "''") + "')"
    relation = parquet
    if mode == "table":
        clock.read(lambda: con.execute(f"CREATE TABLE orders AS SELECT * FROM {parquet}"))
        relation = "orders"
    quarantined: int | None = None
    clock.start()
    outcome = evaluate(
        con, rules, relation, subject="source 'orders'", run_id="bench", now_ms=spec.NOW_MS
    )
    if mode == "quarantine":
        quarantined = outcome.quarantined.num_rows  # the offending rows, with _check, _reason
    spilled = con.execute("SELECT coalesce(sum(size), 0) FROM duckdb_temporary_files()")
    spilled_bytes = int(spilled.fetchall()[0][0])  # what DuckDB had spilled to disk, if anything
    outcome.release()
    clock.stop()
    by_name = {r.check: r for r in outcome.results}
    results: Results = {}
    for key, name, _column, row_level in spec.CHECKS:
        result = by_name[name]
        if "error" in result.diagnostics:
            raise RuntimeError(result.message)
        entry: dict[str, Any] = {"passed": result.passed}
        if row_level:
            entry["failed"] = result.rows_failed
        elif key == "row_count":
            entry["observed"] = result.diagnostics["rows"]
        else:
            entry["observed"] = result.diagnostics.get("newest_ms")
        results[key] = entry
    what = {
        "parquet": "evaluate() over read_parquet(), severity warn (row-level checks counted)",
        "quarantine": "evaluate() over read_parquet(), row-level checks with severity "
        "quarantine; the quarantined rows fetched as Arrow",
        "table": "evaluate() over a DuckDB table loaded from the Parquet file first "
        "(the load is the read), severity warn",
    }[mode]
    limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    what += f"; DuckDB memory_limit {limit}, {spilled_bytes / (1 << 20):.0f} MiB spilled to disk"
    detail = {"rows": outcome.rows_in, "quarantined": quarantined, "detail": what}
    return results, detail


# ---------------------------------------------------------------- Great Expectations
def great_expectations(path: Path, clock: Clock) -> tuple[Results, dict[str, Any]]:
    """A 1.x ephemeral context, a pandas data source with a whole-dataframe batch definition,
    one suite of the eight expectations, ``batch.validate(suite, result_format="BASIC")``."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("bench").add_dataframe_asset("orders")
    definition = asset.add_batch_definition_whole_dataframe("whole")
    expectations = {
        "not_null": gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
        "unique": gxe.ExpectColumnValuesToBeUnique(column="order_id"),
        "between": gxe.ExpectColumnValuesToBeBetween(
            column="amount", min_value=spec.AMOUNT_MIN, max_value=spec.AMOUNT_MAX
        ),
        "in_set": gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(spec.STATUSES)),
        "matches": gxe.ExpectColumnValuesToMatchRegex(column="email", regex=spec.EMAIL_PATTERN),
        "max_length": gxe.ExpectColumnValueLengthsToBeBetween(
            column="country", max_value=spec.COUNTRY_MAX_LENGTH
        ),
        "row_count": gxe.ExpectTableRowCountToBeBetween(
            min_value=spec.ROW_COUNT_MIN, max_value=spec.ROW_COUNT_MAX
        ),
        "freshness": gxe.ExpectColumnMaxToBeBetween(column="created_at", min_value=CUTOFF),
    }
    suite = context.suites.add(
        gx.ExpectationSuite(name="orders", expectations=list(expectations.values()))
    )
    frame = clock.read(lambda: pd.read_parquet(path))
    batch = definition.get_batch(batch_parameters={"dataframe": frame})
    clock.start()
    validation = batch.validate(suite, result_format="BASIC")
    clock.stop()
    by_type = {r.expectation_config.type: r for r in validation.results}
    results: Results = {}
    for key, expectation in expectations.items():
        found = by_type[expectation.expectation_type]
        if found.exception_info and found.exception_info.get("raised_exception"):
            raise RuntimeError(f"{key}: {found.exception_info.get('exception_message')}")
        entry: dict[str, Any] = {"passed": bool(found.success)}
        if key in spec.ROW_LEVEL:
            entry["failed"] = int(found.result["unexpected_count"])
        elif key == "row_count":
            entry["observed"] = int(found.result["observed_value"])
        else:
            entry["observed"] = _epoch_ms(found.result["observed_value"])
        results[key] = entry
    detail = {
        "rows": len(frame),
        "detail": "pandas.read_parquet (default dtypes), then batch.validate(suite, "
        "result_format='BASIC') on a pandas data asset",
    }
    return results, detail


def _epoch_ms(value: Any) -> int | None:
    """A timestamp as Great Expectations reports it (a string or a datetime), in epoch ms."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        value = value.to_pydatetime()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int((value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1))


# ---------------------------------------------------------------- Pandera
def pandera_pandas(path: Path, clock: Clock) -> tuple[Results, dict[str, Any]]:
    """``pandera.pandas.DataFrameSchema`` with built-in checks, ``validate(lazy=True)``."""
    import pandas as pd
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    cutoff = pd.Timestamp(CUTOFF)
    schema = pa.DataFrameSchema(
        {
            "order_id": pa.Column(unique=True, nullable=True),
            "user_id": pa.Column(nullable=False),
            "amount": pa.Column(
                checks=pa.Check.in_range(spec.AMOUNT_MIN, spec.AMOUNT_MAX), nullable=True
            ),
            "status": pa.Column(checks=pa.Check.isin(list(spec.STATUSES)), nullable=True),
            "email": pa.Column(checks=pa.Check.str_matches(spec.EMAIL_PATTERN), nullable=True),
            "country": pa.Column(
                checks=pa.Check.str_length(max_value=spec.COUNTRY_MAX_LENGTH), nullable=True
            ),
            "created_at": pa.Column(
                checks=pa.Check(lambda s: s.max() >= cutoff, name="freshness"), nullable=True
            ),
        },
        checks=[
            pa.Check(
                lambda df: spec.ROW_COUNT_MIN <= len(df) <= spec.ROW_COUNT_MAX, name="row_count"
            )
        ],
    )
    frame = clock.read(lambda: pd.read_parquet(path))
    clock.start()
    try:
        schema.validate(frame, lazy=True)
        cases = None
    except SchemaErrors as exc:
        cases = exc.failure_cases
    clock.stop()
    failing: dict[str, int] = {}
    if cases is not None:
        for (context, column), count in (
            cases.groupby(["schema_context", "column"], dropna=False).size().items()
        ):
            failing[_pandera_key(str(context), column)] = int(count)
    detail = {
        "rows": len(frame),
        "detail": "pandas.read_parquet (default dtypes), then schema.validate(frame, lazy=True); "
        "failures counted from SchemaErrors.failure_cases",
    }
    return _pandera_results(failing), detail


def pandera_polars(path: Path, clock: Clock) -> tuple[Results, dict[str, Any]]:
    """``pandera.polars.DataFrameSchema`` with built-in checks, ``validate(lazy=True)``."""
    import pandera.polars as pa
    import polars as pl
    from pandera.errors import SchemaErrors

    schema = pa.DataFrameSchema(
        {
            "order_id": pa.Column(unique=True, nullable=True),
            "user_id": pa.Column(nullable=False),
            "amount": pa.Column(
                checks=pa.Check.in_range(spec.AMOUNT_MIN, spec.AMOUNT_MAX), nullable=True
            ),
            "status": pa.Column(checks=pa.Check.isin(list(spec.STATUSES)), nullable=True),
            "email": pa.Column(checks=pa.Check.str_matches(spec.EMAIL_PATTERN), nullable=True),
            "country": pa.Column(
                checks=pa.Check.str_length(max_value=spec.COUNTRY_MAX_LENGTH), nullable=True
            ),
            "created_at": pa.Column(
                checks=pa.Check(
                    lambda data: data.lazyframe.select(pl.col(data.key).max() >= CUTOFF),
                    name="freshness",
                ),
                nullable=True,
            ),
        },
        checks=[
            pa.Check(
                lambda data: data.lazyframe.select(
                    pl.len().is_between(spec.ROW_COUNT_MIN, spec.ROW_COUNT_MAX)
                ),
                name="row_count",
            )
        ],
    )
    frame = clock.read(lambda: pl.read_parquet(path))
    clock.start()
    try:
        schema.validate(frame, lazy=True)
        cases = None
    except SchemaErrors as exc:
        cases = exc.failure_cases
    clock.stop()
    failing: dict[str, int] = {}
    if cases is not None:
        grouped = cases.group_by(["schema_context", "column"]).len()
        for context, column, count in grouped.iter_rows():
            failing[_pandera_key(str(context), column)] = int(count)
    detail = {
        "rows": frame.height,
        "detail": "polars.read_parquet, then schema.validate(frame, lazy=True); failures "
        "counted from SchemaErrors.failure_cases",
    }
    return _pandera_results(failing), detail


def _pandera_key(context: str, column: Any) -> str:
    """The check a row of Pandera's failure cases belongs to: one check per column here."""
    if context == "DataFrameSchema":
        return "row_count"
    for key, _name, col, _row in spec.CHECKS:
        if col == column:
            return key
    raise RuntimeError(f"unexpected Pandera failure case: {context} {column!r}")


def _pandera_results(failing: dict[str, int]) -> Results:
    results: Results = {}
    for key in spec.KEYS:
        entry: dict[str, Any] = {"passed": key not in failing}
        if key in spec.ROW_LEVEL:
            entry["failed"] = failing.get(key, 0)
        results[key] = entry
    return results


# ---------------------------------------------------------------- entry point
CONTENDERS = {
    "headwater": lambda a, c: headwater(a.data, a.workdir, "parquet", c),
    "headwater-quarantine": lambda a, c: headwater(a.data, a.workdir, "quarantine", c),
    "headwater-table": lambda a, c: headwater(a.data, a.workdir, "table", c),
    "gx": lambda a, c: great_expectations(a.data, c),
    "pandera-pandas": lambda a, c: pandera_pandas(a.data, c),
    "pandera-polars": lambda a, c: pandera_polars(a.data, c),
}
PRELOAD = {
    "headwater": ("duckdb", "pyarrow", "headwater.quality"),
    "gx": ("pandas", "pyarrow", "great_expectations"),
    "pandera-pandas": ("pandas", "pyarrow", "pandera.pandas"),
    "pandera-polars": ("polars", "pandera.polars"),
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="_quality_worker.py")
    parser.add_argument("contender", choices=sorted(CONTENDERS))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    import importlib

    # Imports are set-up, not checking: do them before the clock starts.
    family = "headwater" if args.contender.startswith("headwater") else args.contender
    for module in PRELOAD[family]:
        importlib.import_module(module)
    clock = Clock()
    results, detail = CONTENDERS[args.contender](args, clock)
    report = {
        "rows": detail["rows"],
        "read_s": clock.read_s,
        "check_s": clock.check_s,
        "cpu_s": clock.cpu_s,
        "rss_before": clock.rss_before,
        "rss_read": clock.rss_read,
        "results": results,
        "quarantined": detail.get("quarantined"),
        "detail": detail["detail"],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
