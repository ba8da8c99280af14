"""PostgreSQL extraction: headwater's reader against `psql \\copy`, dlt and pandas; and the
whole ingest process, `headwater run` into the Delta offline store against dlt's pipelines.

Reads every column of a generated table of N rows (bigint, integer, numeric(12,2), double,
timestamptz, date, text, boolean) with each contender in a process of its own, several times,
and reports the median wall time, rows/s, MB/s (of the table's on-disk size) and peak RSS.
Writes the results to the "PostgreSQL extraction" and "PostgreSQL ingest, whole process"
sections of docs/benchmarks.md (each only when one of its contenders ran).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _common import (
    ROOT,
    WORK_DIR,
    ChildResult,
    ensure_peers_venv,
    fmt_bytes,
    fmt_count,
    fmt_ratio,
    fmt_rows,
    last_line,
    machine_facts,
    markdown_table,
    median,
    package_versions,
    run_child,
    say,
    write_doc_section,
)

DESCRIPTION = "PostgreSQL extraction and ingest: headwater vs psql \\copy, dlt and pandas"
SECTION = "PostgreSQL extraction"
PROCESS_SECTION = "PostgreSQL ingest, whole process"
TABLE_VERSION = 1  # bump when the generated data changes, so old tables are rebuilt
COLUMNS = [
    "id",
    "user_id",
    "amount",
    "score",
    "event_at",
    "event_day",
    "category",
    "note",
    "is_active",
]
WORKER = Path(__file__).resolve().parent / "_pg_worker.py"


@dataclass(frozen=True)
class Contender:
    name: str
    runs_in: str  # "psql", "headwater" (this virtualenv), "headwater-cli" or "peers"
    what: str
    role: str = "extract"
    """"reference" (psql), "extract" (batches, kept nowhere), "load" (written; the read timed)
    or "process" (the whole process timed, imports included, its result written)."""


CONTENDERS = [
    Contender(
        "psql", "psql", "`psql -c '\\copy (SELECT …) TO /dev/null'` (text COPY)", "reference"
    ),
    Contender("headwater", "headwater", "`PostgresSource` connector → Arrow record batches"),
    Contender(
        "headwater-partitioned",
        "headwater",
        "the same with `partition_column='id', num_partitions=2` (parallel range reads)",
    ),
    Contender(
        "headwater-e2e",
        "headwater",
        "`FeatureStore.run()` of a projection view → Delta offline store",
        "load",
    ),
    Contender("dlt-pyarrow", "peers", "dlt `sql_table(backend='pyarrow')`, resource iterated"),
    Contender(
        "dlt-connectorx",
        "peers",
        "dlt `sql_table(backend='connectorx')`, resource iterated (one table for the result)",
    ),
    Contender(
        "dlt-connectorx-stream",
        "peers",
        "as above with `backend_kwargs={'return_type': 'arrow_stream'}` (batches)",
    ),
    Contender(
        "dlt-filesystem",
        "peers",
        "dlt `pipeline.run` (backend='pyarrow') → local filesystem, Parquet",
        "load",
    ),
    Contender("pandas", "peers", "`pandas.read_sql` over SQLAlchemy + psycopg 3", "extract"),
    Contender(
        "headwater-run",
        "headwater-cli",
        "`headwater run` (the CLI) of the projection view in a project applied beforehand, "
        "into an empty Delta offline store",
        "process",
    ),
    Contender(
        "dlt-run-pyarrow",
        "peers",
        "dlt `pipeline.run(sql_table(backend='pyarrow'))` → local filesystem, Parquet",
        "process",
    ),
    Contender(
        "dlt-run-connectorx",
        "peers",
        "the same with `backend='connectorx'`",
        "process",
    ),
    Contender(
        "dlt-run-connectorx-stream",
        "peers",
        "the same with `backend='connectorx'`, `return_type='arrow_stream'`",
        "process",
    ),
]
BY_NAME = {c.name: c for c in CONTENDERS}
GROUPS = {
    "dlt": [c.name for c in CONTENDERS if c.name.startswith("dlt-")],
    "process": ["psql", *(c.name for c in CONTENDERS if c.role == "process")],
}
NEVER_SKIPPED = {"psql", "headwater", "headwater-partitioned", "headwater-e2e", "headwater-run"}
WHOLE = ("reference", "process")
"""Roles timed as whole processes (psql's \\copy is one too)."""


@dataclass
class Outcome:
    """All repetitions of one contender at one table size."""

    contender: Contender
    rows: int = 0
    seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    """Client CPU seconds (user + system, all threads) of each run's read."""
    base_rss: list[int] = field(default_factory=list)
    """Peak RSS before the timed read began (imports, set-up); 0 when unknown."""
    detail: str = ""
    skipped: str = ""
    failed: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.seconds) and not (self.failed or self.skipped)

    @property
    def median_s(self) -> float:
        return median(self.seconds)

    @property
    def rss(self) -> int:
        return max(self.peak_rss)


# ---------------------------------------------------------------- data
def _psql_base(args: argparse.Namespace) -> list[str]:
    return ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", args.host, "-p", str(args.port)]


def _admin(args: argparse.Namespace, database: str) -> str:
    return f"postgresql://{args.user}@{args.host}:{args.port}/{database}"


def _comment(rows: int) -> str:
    return f"headwater benchmark table v{TABLE_VERSION}, {rows} rows"


GENERATE = """
CREATE TABLE {table} (
    id         bigint           NOT NULL,
    user_id    integer          NOT NULL,
    amount     numeric(12, 2)   NOT NULL,
    score      double precision,
    event_at   timestamptz      NOT NULL,
    event_day  date             NOT NULL,
    category   text             NOT NULL,
    note       text,
    is_active  boolean          NOT NULL
);
INSERT INTO {table}
SELECT i,
       (i * 7919 % 100003)::integer,
       ((i * 48271) % 10000000 / 100.0)::numeric(12, 2),
       CASE WHEN i % 17 = 0 THEN NULL
            ELSE ((i * 16807) % 2147483647)::float8 / 2147483647 * 1000 END,
       t.ts,
       (t.ts AT TIME ZONE 'UTC')::date,
       (ARRAY['electronics', 'books', 'garden', 'toys', 'grocery', 'fashion', 'sports',
              'music'])[1 + i % 8],
       CASE WHEN i % 10 = 0 THEN NULL ELSE left(md5(i::text), 8 + (i % 25)::integer) END,
       i % 3 <> 0
FROM generate_series(1::bigint, {rows}::bigint) AS g(i),
     LATERAL (SELECT timestamptz '2024-01-01 00:00:00+00'
                     + ((i * 7919) % (90 * 86400)) * interval '1 second'
                     + (i % 1000000) * interval '1 microsecond' AS ts) AS t
"""


def ensure_table(args: argparse.Namespace, rows: int) -> tuple[str, int]:
    """Create (or reuse) ``bench_<rows>`` in the benchmark database; return name and size."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(_admin(args, "postgres"), autocommit=True) as admin:
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [args.database]
        ).fetchone()
        if not exists:
            say(f"creating database {args.database}")
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.database)))
    table = f"bench_{rows}"
    with psycopg.connect(_admin(args, args.database), autocommit=True) as con:
        found = con.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')", [f"public.{table}"]
        ).fetchone()
        if args.fresh or not found or found[0] != _comment(rows):
            say(f"generating {table} ({rows:,} rows)")
            started = datetime.now(UTC)
            ident = sql.Identifier(table)
            con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
            with con.transaction():
                con.execute(sql.SQL(GENERATE).format(table=ident, rows=sql.Literal(rows)))
                con.execute(
                    sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(_comment(rows)))
                )
            # Set hint bits and visibility now, so the first contender does not pay for it.
            con.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(ident))
            took = (datetime.now(UTC) - started).total_seconds()
            say(f"generated {table} in {took:.0f} s")
        else:
            say(f"reusing {table} (--fresh rebuilds it)")
        size = con.execute("SELECT pg_total_relation_size(%s)", [f"public.{table}"]).fetchone()
    return table, int(size[0]) if size else 0


def server_version(args: argparse.Namespace) -> str:
    import psycopg

    with psycopg.connect(_admin(args, "postgres")) as con:
        row = con.execute("SHOW server_version").fetchone()
        buffers = con.execute("SHOW shared_buffers").fetchone()
    version = str(row[0]).split()[0] if row else "?"
    return f"{version} (shared_buffers {buffers[0] if buffers else '?'})"


# ---------------------------------------------------------------- running contenders
def _select(table: str) -> str:
    return f"SELECT {', '.join(COLUMNS)} FROM public.{table}"


# child, rows, seconds, client CPU seconds, detail, peak RSS before the read
Run = tuple[ChildResult, int, float, float, str, int]


def run_psql(args: argparse.Namespace, table: str) -> Run:
    cmd = [
        *_psql_base(args),
        "-U",
        args.user,
        "-d",
        args.database,
        "-c",
        f"\\copy ({_select(table)}) TO '/dev/null'",
    ]
    child = run_child(cmd, timeout_s=args.timeout)
    if child.returncode != 0:
        raise RuntimeError(child.stderr.strip() or f"psql exited with {child.returncode}")
    words = last_line(child.stdout).split()
    rows = int(words[1]) if len(words) == 2 and words[0] == "COPY" else -1
    return child, rows, child.wall_s, child.cpu_s, "whole psql process (wall and CPU)", 0


def run_worker(args: argparse.Namespace, python: Path, name: str, table: str) -> Run:
    work = WORK_DIR / f"{name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    dsn = _admin(args, args.database)
    cmd = [str(python), str(WORKER), name, "--dsn", dsn, "--table", table]
    cmd += ["--columns", ",".join(COLUMNS), "--workdir", str(work)]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    try:
        child = run_child(cmd, env=env, cwd=ROOT, timeout_s=args.timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if child.timed_out:
        raise RuntimeError(f"timed out after {args.timeout:.0f} s")
    if child.returncode != 0:
        tail = "\n".join(child.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"exited with {child.returncode}: {tail}")
    report = json.loads(last_line(child.stdout))
    rows, seconds, cpu = int(report["rows"]), float(report["seconds"]), float(report["cpu_s"])
    if BY_NAME[name].role == "process":
        seconds, cpu = child.wall_s, child.cpu_s
    return child, rows, seconds, cpu, str(report["detail"]), int(report.get("rss_before", 0))


def prepare_project(args: argparse.Namespace, table: str) -> Path:
    """A project over ``table`` in the work folder, applied (not timed): ``headwater run``
    then reads, computes and writes only."""
    from _pg_worker import headwater_project

    project = WORK_DIR / f"project-{table}-{os.getpid()}"
    shutil.rmtree(project, ignore_errors=True)
    headwater_project(project, _admin(args, args.database), table, COLUMNS)
    cli = Path(sys.executable).parent / "headwater"
    done = subprocess.run(
        [str(cli), "apply", "--repo", str(project)], capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"headwater apply failed: {done.stderr.strip() or done.stdout}")
    return project


def run_headwater_cli(args: argparse.Namespace, project: Path) -> Run:
    """``headwater run`` as a process of its own, into an empty offline store."""
    shutil.rmtree(project / "data", ignore_errors=True)
    shutil.rmtree(project / ".headwater" / "tmp", ignore_errors=True)
    cli = Path(sys.executable).parent / "headwater"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    child = run_child([str(cli), "run", "--repo", str(project)], env=env, timeout_s=args.timeout)
    if child.timed_out:
        raise RuntimeError(f"timed out after {args.timeout:.0f} s")
    if child.returncode != 0:
        tail = "\n".join((child.stderr.strip() or child.stdout.strip()).splitlines()[-5:])
        raise RuntimeError(f"exited with {child.returncode}: {tail}")
    found = re.search(r"(\d+) rows in, (\d+) inserted", child.stdout)
    rows = int(found.group(1)) if found else -1
    detail = f"whole process; {found.group(2) if found else '?'} rows inserted into a new table"
    return child, rows, child.wall_s, child.cpu_s, detail, 0


def too_big(args: argparse.Namespace, earlier: Outcome | None, rows: int, earlier_rows: int) -> str:
    """Why a peer would exceed the time or memory budget at ``rows`` (from a smaller run)."""
    if earlier is None or not earlier.ok:
        return ""
    scale = rows / earlier_rows
    seconds = earlier.median_s * scale
    # What the read added to the process scales with the rows; imports and set-up do not.
    base = min(earlier.base_rss) if earlier.base_rss else 0
    rss = base + (earlier.rss - base) * scale
    if seconds > args.budget_s or rss > args.budget_rss_gib * (1 << 30):
        return (
            f"skipped: {fmt_rows(earlier_rows)} rows took {earlier.median_s:.0f} s and "
            f"{fmt_bytes(earlier.rss)}, so about {seconds:.0f} s and {fmt_bytes(rss)} "
            f"per run at {fmt_rows(rows)} (budget {args.budget_s:.0f} s, "
            f"{args.budget_rss_gib:g} GiB)"
        )
    return ""


def measure_size(
    args: argparse.Namespace,
    rows: int,
    names: list[str],
    peers_python: Path | None,
    earlier: dict[str, Outcome],
    earlier_rows: int,
) -> tuple[str, int, dict[str, Outcome]]:
    table, size = ensure_table(args, rows)
    say(f"{table}: {fmt_bytes(size)}; warming the page cache with one untimed \\copy")
    run_psql(args, table)
    outcomes = {name: Outcome(BY_NAME[name]) for name in names}
    project = None
    if any(BY_NAME[n].runs_in == "headwater-cli" for n in names):
        project = prepare_project(args, table)
    for name in names:
        if name not in NEVER_SKIPPED:
            outcomes[name].skipped = too_big(args, earlier.get(name), rows, earlier_rows)
            if outcomes[name].skipped:
                say(f"{name}: {outcomes[name].skipped}")
    for rep in range(1, args.repeat + 1):
        for name in names:
            out = outcomes[name]
            if out.skipped or out.failed:
                continue
            contender = BY_NAME[name]
            try:
                if contender.runs_in == "psql":
                    child, got, seconds, cpu, detail, base = run_psql(args, table)
                elif contender.runs_in == "headwater-cli":
                    assert project is not None
                    child, got, seconds, cpu, detail, base = run_headwater_cli(args, project)
                else:
                    python = peers_python if contender.runs_in == "peers" else sys.executable
                    assert python is not None, "the peers virtualenv was not set up"
                    run = run_worker(args, Path(python), name, table)
                    child, got, seconds, cpu, detail, base = run
            except (RuntimeError, ValueError, KeyError) as exc:
                out.failed = str(exc).strip().splitlines()[-1] if str(exc).strip() else "failed"
                say(f"{table} {name} run {rep}: FAILED: {exc}")
                continue
            if got != rows:
                out.failed = f"read {got} rows, expected {rows}"
            out.rows = got
            out.seconds.append(seconds)
            out.cpu_s.append(cpu)
            out.peak_rss.append(child.peak_rss)
            out.base_rss.append(base)
            out.detail = detail
            say(
                f"{table} {name} run {rep}/{args.repeat}: {seconds:.2f} s, "
                f"{fmt_count(rows / seconds)} rows/s, client CPU {cpu:.2f} s, "
                f"peak RSS {fmt_bytes(child.peak_rss)}"
            )
    if project is not None:
        shutil.rmtree(project, ignore_errors=True)
    return table, size, outcomes


# ---------------------------------------------------------------- reporting
DLT_EXTRACT = ("dlt-pyarrow", "dlt-connectorx", "dlt-connectorx-stream")
DLT_PROCESS = ("dlt-run-pyarrow", "dlt-run-connectorx", "dlt-run-connectorx-stream")


def dlt_best(outcomes: dict[str, Outcome], names: tuple[str, ...] = DLT_EXTRACT) -> Outcome | None:
    done = [outcomes[n] for n in names if n in outcomes and outcomes[n].ok]
    return min(done, key=lambda o: o.median_s) if done else None


def size_table(rows: int, size: int, outcomes: dict[str, Outcome], best: Outcome | None) -> str:
    """One size's table: ``outcomes`` (psql among them for *vs \\copy*) and ``best``, the
    dlt contender the *vs dlt best* column compares with."""
    copy = outcomes.get("psql")
    lines = []
    for name, out in outcomes.items():
        if not out.ok:
            lines.append([name, "skipped" if out.skipped else "failed", *[""] * 7])
            continue
        vs_copy = copy.median_s / out.median_s if copy and copy.ok else None
        vs_dlt = best.median_s / out.median_s if best else None
        lines.append(
            [
                name,
                f"{out.median_s:.2f}",
                " / ".join(f"{s:.2f}" for s in out.seconds),
                f"{median(out.cpu_s):.2f}",
                fmt_count(rows / out.median_s),
                f"{size / out.median_s / 1e6:.0f}",
                fmt_bytes(out.rss),
                fmt_ratio(vs_copy),
                fmt_ratio(vs_dlt),
            ]
        )
    headers = ["contender", "median s", "runs (s)", "client CPU s", "rows/s", "MB/s", "peak RSS"]
    headers += ["vs \\copy", "vs dlt best"]
    return markdown_table(headers, lines, "lrrrrrrrr")


def judged(rows: int, subject: str, other: Outcome, ours: Outcome, target: float, of: str) -> str:
    """A target line: ``ours``'s rate over ``other``'s, and whether it reaches ``target``."""
    ratio = other.median_s / ours.median_s
    verdict = "holds" if ratio >= target else "does not hold"
    return (
        f"{fmt_rows(rows)} rows: {subject} at {ratio:.2f}x {of} (target ≥ {target:g}x): {verdict}"
    )


def targets(results: Results, rss_growth: float) -> list[str]:
    """The targets for headwater's reader, each judged (never asserted)."""
    notes = []
    for rows, _size, outcomes in results:
        hw, copy, best = outcomes.get("headwater"), outcomes.get("psql"), dlt_best(outcomes)
        if not (hw and hw.ok):
            continue
        if copy and copy.ok:
            notes.append(judged(rows, "headwater reads", copy, hw, 0.8, "the `\\copy` rate"))
        if best:
            against = f"the rate of dlt's best backend, {best.contender.name}"
            notes.append(judged(rows, "headwater reads", best, hw, 1.5, against))
    for rows, _size, outcomes in results:
        e2e, dlt_fs = outcomes.get("headwater-e2e"), outcomes.get("dlt-filesystem")
        if e2e and e2e.ok and dlt_fs and dlt_fs.ok:
            notes.append(
                f"{fmt_rows(rows)} rows: headwater end to end (to Delta) runs at "
                f"{dlt_fs.median_s / e2e.median_s:.2f}x the rate of dlt's pipeline to Parquet "
                "files (for information: no target)"
            )
    for name, rule in (("headwater", True), ("headwater-e2e", False)):
        measured = [(r, o[name]) for r, _s, o in results if name in o and o[name].ok]
        if len(measured) < 2:
            continue
        (small_rows, small), (big_rows, big) = measured[0], measured[-1]
        growth = big.rss / small.rss
        line = (
            f"{name} peak RSS {fmt_bytes(small.rss)} at {fmt_rows(small_rows)} rows, "
            f"{fmt_bytes(big.rss)} at {fmt_rows(big_rows)} rows: {growth:.2f}x"
        )
        if rule:
            verdict = "holds" if growth <= rss_growth else "does not hold"
            line += f" (target: no material growth, ≤ {rss_growth:g}x): {verdict}"
        else:
            line += " (for information: no target)"
        notes.append(line)
    return notes


Results = list[tuple[int, int, dict[str, Outcome]]]


def _of_section(results: Results, whole: bool) -> Results:
    """The outcomes of one section: whole processes (with psql) or the others (with psql)."""
    picked = []
    for rows, size, outcomes in results:
        mine = {
            n: o for n, o in outcomes.items() if n == "psql" or (o.contender.role in WHOLE) == whole
        }
        if any(n != "psql" for n in mine):
            picked.append((rows, size, mine))
    return picked


def _sections(
    args: argparse.Namespace,
    results: Results,
    facts: dict[str, str],
    intro: str,
    best_of: tuple[str, ...],
    verdicts: list[str],
) -> str:
    parts = [
        textwrap.fill(intro, width=100, break_on_hyphens=False, break_long_words=False),
        "",
        "Rerun with `scripts/bench postgres` (options in `benchmarks/README.md`).",
        "",
        "| contender | what it does |",
        "| --- | --- |",
        *(f"| {c.name} | {c.what} |" for c in CONTENDERS if any(c.name in o for *_x, o in results)),
        "",
        "### Machine",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
    ]
    for rows, size, outcomes in results:
        parts += [
            "",
            f"### {rows:,} rows ({fmt_bytes(size)} on disk)",
            "",
            size_table(rows, size, outcomes, dlt_best(outcomes, best_of)),
        ]
        notes = [
            f"- {name}: {out.skipped or ('failed: ' + out.failed if out.failed else out.detail)}"
            for name, out in outcomes.items()
            if out.skipped or out.failed or out.detail
        ]
        if notes:
            parts += ["", *notes]
    if verdicts:
        parts += ["", "### Targets", "", *(f"- {line}" for line in verdicts)]
    return "\n".join(parts) + "\n"


def report(args: argparse.Namespace, results: Results, facts: dict[str, str]) -> str:
    """The extraction section (every contender but the whole-process ones)."""
    intro = (
        "Each contender reads every column of `bench_<N>` "
        f"(`{', '.join(COLUMNS)}`: bigint, integer, numeric(12,2), double precision, "
        "timestamptz, date, text, text with nulls, boolean; generated with `generate_series`), "
        f"in a process of its own, {args.repeat} time(s) per table size, after one untimed "
        "`\\copy` that warms the page cache. Times are the median of the runs and cover the read "
        "alone (imports and set-up excluded; `\\copy` is the whole `psql` process). MB/s is the "
        "table's `pg_total_relation_size` over that time. Peak RSS is the contender's process "
        "(`ru_maxrss` from `wait4`), not the PostgreSQL backend's; *client CPU s* is the median "
        "user + system CPU time of that process during the read (all its threads; the server's "
        "work is not in it). *vs \\copy* and *vs dlt best* "
        "are rate ratios (above 1x is faster); dlt's best is the fastest of its extraction "
        "contenders (`dlt-filesystem` also writes, so it is left out of that). The whole "
        f'ingest processes are in the section "{PROCESS_SECTION}".'
    )
    chosen = _of_section(results, whole=False)
    verdicts = targets(chosen, args.rss_growth)
    return _sections(args, chosen, facts, intro, DLT_EXTRACT, verdicts)


def process_report(args: argparse.Namespace, results: Results, facts: dict[str, str]) -> str:
    """The whole-process section: `headwater run`, dlt's pipelines and `\\copy`."""
    intro = (
        "The whole ingest, as a user runs it: each contender is a process of its own, timed "
        "from its start to its exit (interpreter, imports, connecting, reading, writing), "
        f"{args.repeat} time(s) per table size, round-robin, in the same run as `psql \\copy` to "
        "`/dev/null`. `headwater-run` is the `headwater run` command in a project whose "
        "`headwater apply` ran beforehand (not timed), writing the projection view of every "
        "column into a new Delta table (the offline folder is emptied before each run); the "
        "`dlt-run-*` contenders are one Python process each running dlt's "
        "`pipeline.run(sql_table(...), loader_file_format='parquet')` (extract, normalize, "
        "load) into a new local filesystem destination. *client CPU s* is the whole process "
        "(all threads, not the server); peak RSS is the process's `ru_maxrss`. *vs \\copy* and "
        "*vs dlt best* are rate ratios; dlt's best is its fastest `dlt-run-*` contender at that "
        "size."
    )
    chosen = _of_section(results, whole=True)
    verdicts = process_targets(chosen, args.rss_growth)
    return _sections(args, chosen, facts, intro, DLT_PROCESS, verdicts)


def process_targets(results: Results, rss_growth: float) -> list[str]:
    """The issue's targets for `headwater run`, each judged (never asserted)."""
    notes = []
    for rows, _size, outcomes in results:
        run, copy = outcomes.get("headwater-run"), outcomes.get("psql")
        best = dlt_best(outcomes, DLT_PROCESS)
        if not (run and run.ok):
            continue
        if best:
            against = f"the rate of dlt's best whole pipeline, {best.contender.name}"
            notes.append(judged(rows, "`headwater run` runs", best, run, 1.5, against))
        if copy and copy.ok:
            notes.append(judged(rows, "`headwater run` runs", copy, run, 0.5, "the `\\copy` rate"))
    measured = [(r, o["headwater-run"]) for r, _s, o in results if o.get("headwater-run")]
    measured = [(r, o) for r, o in measured if o.ok]
    if len(measured) >= 2:
        (small_rows, small), (big_rows, big) = measured[0], measured[-1]
        growth = big.rss / small.rss
        verdict = "holds" if growth <= rss_growth else "does not hold"
        notes.append(
            f"`headwater run` peak RSS {fmt_bytes(small.rss)} at {fmt_rows(small_rows)} rows, "
            f"{fmt_bytes(big.rss)} at {fmt_rows(big_rows)} rows: {growth:.2f}x (target: flat, "
            f"≤ {rss_growth:g}x): {verdict}"
        )
    return notes


# ---------------------------------------------------------------- entry point
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench postgres",
        description=DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--rows", default="1000000,10000000", help="comma-separated table sizes, in rows"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender and size")
    names = ", ".join([*BY_NAME, *GROUPS])
    parser.add_argument(
        "--only", default="", help=f"comma-separated contenders (default: all): {names}"
    )
    parser.add_argument("--fresh", action="store_true", help="regenerate the tables")
    parser.add_argument("--host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--database", default="headwater_bench")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=600,
        help="skip a peer at a size where, scaled from a smaller size, one run would take longer",
    )
    parser.add_argument(
        "--budget-rss-gib",
        type=float,
        default=12,
        help="skip a peer at a size where, scaled from a smaller size, it would need more memory",
    )
    parser.add_argument(
        "--rss-growth",
        type=float,
        default=1.25,
        help="largest headwater peak-RSS ratio, largest size over smallest, that counts as flat",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument(
        "--no-doc", action="store_true", help="print the results only; leave docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(s.replace("_", "")) for s in args.rows.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--rows takes comma-separated integers, got {args.rows!r}")
    if not args.sizes or min(args.sizes) <= 0:
        parser.error("--rows needs at least one positive size")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    wanted: list[str] = []
    for name in (n.strip() for n in args.only.split(",") if n.strip()):
        if name not in BY_NAME and name not in GROUPS:
            parser.error(f"unknown contender {name!r}; choose from {names}")
        wanted += GROUPS.get(name, [name])
    args.names = [c.name for c in CONTENDERS if not wanted or c.name in wanted]
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import psycopg

    try:
        return _main(args)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
        say(f"cannot use PostgreSQL at {args.host}:{args.port} as {args.user}: {reason}")
        say("start the server (scripts/test does) or pass --host/--port/--user")
        return 1


def _main(args: argparse.Namespace) -> int:
    if shutil.which("psql") is None and "psql" in args.names:
        say(
            "psql is not on PATH: install the PostgreSQL client (apt-get install postgresql-client)"
        )
        return 1
    peers = any(BY_NAME[n].runs_in == "peers" for n in args.names)
    peers_python = ensure_peers_venv() if peers else None

    import headwater.connectors.postgres.reader as reader

    facts = machine_facts()
    facts["PostgreSQL"] = server_version(args)
    ours = package_versions(
        sys.executable,
        ["headwater", "adbc-driver-postgresql", "pyarrow", "duckdb", "deltalake", "psycopg"],
    )
    facts["headwater side"] = ", ".join(f"{k} {v}" for k, v in ours.items())
    facts["headwater reader"] = (reader.__doc__ or "?").strip().splitlines()[0]
    if peers_python:
        theirs = package_versions(
            peers_python,
            ["dlt", "connectorx", "sqlalchemy", "psycopg2-binary", "psycopg", "pandas", "pyarrow"],
        )
        facts["peers"] = ", ".join(f"{k} {v}" for k, v in theirs.items())
    psql = subprocess.run(["psql", "--version"], capture_output=True, text=True)
    facts["psql"] = psql.stdout.strip()

    start_load = os.getloadavg()[0]
    results: Results = []
    earlier: dict[str, Outcome] = {}
    earlier_rows = 0
    for rows in args.sizes:
        _table, size, outcomes = measure_size(
            args, rows, args.names, peers_python, earlier, earlier_rows
        )
        results.append((rows, size, outcomes))
        earlier, earlier_rows = outcomes, rows
    facts["load average (1 min)"] = (
        f"{start_load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    for heading, build, whole in (
        (SECTION, report, False),
        (PROCESS_SECTION, process_report, True),
    ):
        if not _of_section(results, whole):
            continue
        text = build(args, results, facts)
        print(f"## {heading}\n\n{text}")
        if not args.no_doc:
            write_doc_section(heading, text)
            say(f"wrote the {heading!r} section of {Path('docs/benchmarks.md')}")
    return 0
