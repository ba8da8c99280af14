"""Data quality: headwater's ``evaluate()`` against Great Expectations and Pandera.

Eight typical checks — not_null(user_id), unique(order_id), between(amount, 0, 100000),
in_set(status), matches(email, regex), max_length(country, 2), row_count(1, 50M) and
freshness(created_at, 2h) — over a generated Parquet table of N rows (10 million by default)
with failures planted in every checked column. Each contender declares the same checks in its
own tool and runs in a process of its own, several times: headwater in this virtualenv, Great
Expectations (1.x) and Pandera (pandas and polars backends) in the peers' virtualenv. Reports
rows/s, seconds, CPU and peak RSS, and the rows each check failed in each tool, which must
agree. Writes the "Data quality (`scripts/bench quality`)" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import _quality_spec as spec
from _common import (
    ROOT,
    WORK_DIR,
    ensure_peers_venv,
    fmt_bytes,
    fmt_count,
    fmt_rows,
    last_line,
    machine_facts,
    package_versions,
    run_child,
    say,
    write_doc_section,
)
from _quality_report import CONTENDERS, Outcome, agreement, report

DESCRIPTION = "Data quality: evaluate() vs Great Expectations and Pandera, 8 checks, rows/s"
SECTION = "Data quality (`scripts/bench quality`)"
WORKER = Path(__file__).resolve().parent / "_quality_worker.py"
DEFAULT_ROWS = 10_000_000
QUICK_ROWS = 1_000_000


# ---------------------------------------------------------------- data
def data_file(rows: int, fresh: bool) -> Path:
    """The Parquet table of ``rows`` rows under benchmarks/.work/, generated unless present."""
    import duckdb

    path = WORK_DIR / f"quality-v{spec.DATA_VERSION}-{rows}.parquet"
    if path.exists() and not fresh:
        say(f"reusing {path.relative_to(ROOT)} (--fresh regenerates it)")
        return path
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    say(f"generating {path.relative_to(ROOT)} ({rows:,} rows)")
    query = spec.GENERATE.format(rows=rows, t_end_us=spec.T_END_US, span_ms=spec.SPAN_MS)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            f"COPY ({query}) TO '{partial}' (FORMAT parquet, COMPRESSION zstd, "
            "ROW_GROUP_SIZE 122880)"
        )
    finally:
        con.close()
    partial.replace(path)
    return path


# ---------------------------------------------------------------- running contenders
def run_worker(args: argparse.Namespace, python: str, name: str, data: Path) -> dict[str, Any]:
    work = WORK_DIR / f"quality-{name}-{os.getpid()}"
    cmd = [python, str(WORKER), name, "--data", str(data), "--workdir", str(work)]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    try:
        child = run_child(cmd, env=env, cwd=ROOT, timeout_s=args.timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if child.timed_out:
        raise RuntimeError(f"timed out after {args.timeout:.0f} s")
    if child.returncode != 0:
        tail = "\n".join(child.stderr.strip().splitlines()[-5:])
        killed = " (killed: out of memory?)" if child.returncode == -9 else ""
        raise RuntimeError(f"exited with {child.returncode}{killed}: {tail}")
    report: dict[str, Any] = json.loads(last_line(child.stdout))
    report["peak_rss"] = child.peak_rss
    report["process_s"] = child.wall_s
    return report


def measure(
    args: argparse.Namespace, rows: int, names: list[str], peers_python: str | None
) -> dict[str, Outcome]:
    data = data_file(rows, args.fresh)
    say(f"{data.name}: {fmt_bytes(data.stat().st_size)}")
    # Warm the page cache so that the first contender does not pay for the disk.
    with data.open("rb") as f:
        while f.read(1 << 24):
            pass
    outcomes = {name: Outcome(CONTENDERS[name], rows) for name in names}
    for rep in range(1, args.repeat + 1):
        for name in names:
            out = outcomes[name]
            if out.failed:
                continue
            python = sys.executable if out.contender.venv == "headwater" else peers_python
            assert python is not None, "the peers virtualenv was not set up"
            try:
                got = run_worker(args, python, name, data)
            except (RuntimeError, ValueError, KeyError) as exc:
                text = str(exc).strip()
                out.failed = text.splitlines()[-1] if text else "failed"
                say(f"{fmt_rows(rows)} {name} run {rep}: FAILED: {text}")
                continue
            run = out.add(got)
            if got["rows"] != rows:
                out.failed = f"checked {got['rows']} rows, expected {rows}"
            read = "" if run.read_s is None else f"read {run.read_s:.2f} s, "
            say(
                f"{fmt_rows(rows)} {name} run {rep}/{args.repeat}: {read}checks "
                f"{run.check_s:.2f} s ({fmt_count(rows / run.check_s)} rows/s), "
                f"CPU {run.cpu_s:.2f} s, peak RSS {fmt_bytes(run.peak_rss)}"
            )
    return outcomes


# ---------------------------------------------------------------- entry point
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench quality",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "--rows", type=int, default=DEFAULT_ROWS, help="rows in the table (default: 10,000,000)"
    )
    parser.add_argument(
        "--gx-rows",
        type=int,
        default=None,
        help="run Great Expectations on the first N rows only (a table of its own, with "
        "every other contender measured at that size too, so counts can be compared); "
        "default: all of --rows",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per contender and size (default: 3)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke test: {QUICK_ROWS:,} rows, one run each, docs/benchmarks.md left alone",
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated contenders (default: all): {', '.join(CONTENDERS)}",
    )
    parser.add_argument("--fresh", action="store_true", help="regenerate the Parquet tables")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds per run (default: 1800)"
    )
    parser.add_argument(
        "--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    args.command = "scripts/bench quality" + (" " + " ".join(argv) if argv else "")
    if args.quick:
        args.rows, args.repeat, args.no_doc = QUICK_ROWS, 1, True
        args.gx_rows = min(args.gx_rows or QUICK_ROWS, QUICK_ROWS)
    if args.rows <= 0 or args.repeat < 1:
        parser.error("--rows and --repeat must be positive")
    if args.rows > spec.ROW_COUNT_MAX:
        parser.error(f"--rows above {spec.ROW_COUNT_MAX:,} would fail the row_count check")
    args.gx_rows = args.gx_rows or args.rows
    if not 0 < args.gx_rows <= args.rows:
        parser.error("--gx-rows must be positive and at most --rows")
    wanted = [n.strip() for n in args.only.split(",") if n.strip()]
    for name in wanted:
        if name not in CONTENDERS:
            parser.error(f"unknown contender {name!r}; choose from {', '.join(CONTENDERS)}")
    args.names = [n for n in CONTENDERS if not wanted or n in wanted]
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    peers = any(CONTENDERS[n].venv == "peers" for n in args.names)
    peers_python = str(ensure_peers_venv()) if peers else None
    facts = machine_facts()
    ours = package_versions(sys.executable, ["headwater", "duckdb", "pyarrow"])
    facts["headwater side"] = ", ".join(f"{k} {v}" for k, v in ours.items())
    if peers_python:
        theirs = ["great-expectations", "pandera", "pandas", "polars", "numpy", "pyarrow"]
        versions = package_versions(peers_python, theirs)
        facts["peers"] = ", ".join(f"{k} {v}" for k, v in versions.items())
    start_load = os.getloadavg()[0]
    sizes = sorted({args.gx_rows, args.rows})
    results: list[tuple[int, dict[str, Outcome]]] = []
    for rows in sizes:
        names = [n for n in args.names if n != "gx" or rows == args.gx_rows]
        results.append((rows, measure(args, rows, names, peers_python)))
    end_load = os.getloadavg()[0]
    facts["load average (1 min)"] = f"{start_load:.2f} at the start, {end_load:.2f} at the end"
    cores = os.cpu_count() or 1
    if max(start_load, end_load) > cores:
        facts["note"] = (
            "**the machine was busy** (load above its cores): other work competed with the "
            "contenders, so these numbers are lower and noisier than on a quiet machine"
        )
    text = report(args, results, facts)
    print(text)
    problems = [p for rows, outcomes in results for p in agreement(rows, outcomes)[1]]
    if problems:
        say("the tools DISAGREE on the failing rows; docs/benchmarks.md left alone:")
        for problem in problems:
            say(f"  {problem}")
        return 1
    if not args.no_doc:
        write_doc_section(SECTION, text)
        say(f"wrote the {SECTION!r} section of docs/benchmarks.md")
    return 0
