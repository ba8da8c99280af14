"""The contenders and the report of ``benchmarks/quality.py``: tables, agreement, targets."""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import _quality_spec as spec
from _common import fmt_bytes, fmt_count, fmt_ratio, fmt_rows, markdown_table, median

TARGET_VS_GX = 5.0


@dataclass(frozen=True)
class Contender:
    name: str
    venv: str  # "headwater" (this virtualenv) or "peers"
    what: str


CONTENDERS = {
    c.name: c
    for c in (
        Contender(
            "headwater",
            "headwater",
            "`headwater.quality.evaluate(con, checks, \"read_parquet('…')\", …)`: DuckDB reads "
            "the file inside the evaluation; severity `warn`. The connection has the settings of "
            "headwater's DuckDB engine (UTC, `preserve_insertion_order=false`, its default "
            "`memory_limit`, a spill folder)",
        ),
        Contender(
            "headwater-quarantine",
            "headwater",
            "the same with severity `quarantine` on the six row-level checks, and the "
            "quarantined rows (own columns + `_check`, `_reason`, `_run_id`) fetched as an Arrow "
            "table (`outcome.quarantined`)",
        ),
        Contender(
            "headwater-table",
            "headwater",
            "`CREATE TABLE … AS SELECT * FROM read_parquet(…)` first (its time is the read), "
            "then `evaluate()` over that table; severity `warn`",
        ),
        Contender(
            "gx",
            "peers",
            "Great Expectations: `pandas.read_parquet` (the read), then, on an ephemeral "
            "context's pandas data asset (whole-dataframe batch definition), "
            '`batch.validate(suite, result_format="BASIC")` — the cheapest format that still '
            "counts unexpected rows (the default, `SUMMARY`, also tallies unexpected values)",
        ),
        Contender(
            "pandera-pandas",
            "peers",
            "Pandera: `pandas.read_parquet` (the read), then `pandera.pandas.DataFrameSchema"
            "(…).validate(frame, lazy=True)`",
        ),
        Contender(
            "pandera-polars",
            "peers",
            "Pandera: `polars.read_parquet` (the read), then `pandera.polars.DataFrameSchema"
            "(…).validate(frame, lazy=True)`",
        ),
    )
}
HEADWATER = ("headwater", "headwater-quarantine", "headwater-table")
PANDERA = ("pandera-pandas", "pandera-polars")


@dataclass
class Run:
    """One run of one contender, from the worker's JSON line and ``wait4``."""

    read_s: float | None
    check_s: float
    cpu_s: float
    peak_rss: int
    results: dict[str, dict[str, Any]]
    quarantined: int | None
    detail: str

    @classmethod
    def parse(cls, got: dict[str, Any]) -> Run:
        read = got.get("read_s")
        quarantined = got.get("quarantined")
        return cls(
            read_s=None if read is None else float(read),
            check_s=float(got["check_s"]),
            cpu_s=float(got["cpu_s"]),
            peak_rss=int(got["peak_rss"]),
            results=dict(got["results"]),
            quarantined=None if quarantined is None else int(quarantined),
            detail=str(got["detail"]),
        )


@dataclass
class Outcome:
    """All runs of one contender at one table size."""

    contender: Contender
    rows: int
    runs: list[Run] = field(default_factory=list)
    failed: str = ""

    def add(self, got: dict[str, Any]) -> Run:
        run = Run.parse(got)
        self.runs.append(run)
        return run

    @property
    def ok(self) -> bool:
        return bool(self.runs) and not self.failed

    @property
    def check_s(self) -> float:
        return median([r.check_s for r in self.runs])

    @property
    def read_s(self) -> float | None:
        reads = [r.read_s for r in self.runs if r.read_s is not None]
        return median(reads) if reads else None

    @property
    def total_s(self) -> float:
        return median([(r.read_s or 0.0) + r.check_s for r in self.runs])

    @property
    def rate(self) -> float:
        """Rows per second of the checks (for headwater reading the file: the read included)."""
        return self.rows / self.check_s

    @property
    def total_rate(self) -> float:
        return self.rows / self.total_s

    @property
    def peak_rss(self) -> int:
        return max(r.peak_rss for r in self.runs)

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        return self.runs[-1].results


# ---------------------------------------------------------------- agreement
def _cell(key: str, entry: dict[str, Any]) -> str:
    if key in spec.ROW_LEVEL:
        return f"{entry['failed']:,}"
    return "pass" if entry["passed"] else "fail"


def _observed(key: str, value: int) -> str:
    if key == "row_count":
        return f"{value:,} rows"
    stamp = datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    age = (spec.NOW_MS - value) / 3_600_000
    return f"newest `created_at` {stamp} UTC, {age:.2f} h before the fixed now"


def agreement(rows: int, outcomes: dict[str, Outcome]) -> tuple[str, list[str]]:
    """A table of every check's outcome in every tool, what the batch-level checks saw, and
    the disagreements found."""
    done = [o for o in outcomes.values() if o.ok]
    problems: list[str] = []
    for o in done:
        if any(r.results != o.runs[0].results for r in o.runs[1:]):
            problems.append(
                f"{fmt_rows(rows)} rows: {o.contender.name} changed its results between runs"
            )
    lines = []
    seen_lines = []
    for key, name, _column, row_level in spec.CHECKS:
        entries = {o.contender.name: o.results[key] for o in done}
        values = list(entries.values())
        same = len({e["passed"] for e in values}) <= 1
        if row_level:
            same = same and len({e["failed"] for e in values}) <= 1
        else:
            seen = {n: e["observed"] for n, e in entries.items() if e.get("observed") is not None}
            # DuckDB's epoch_ms rounds to the millisecond; the Python side truncates.
            tolerance = 1 if key == "freshness" else 0
            if seen:
                same = same and max(seen.values()) - min(seen.values()) <= tolerance
                by_value: dict[str, list[str]] = {}
                for n, v in seen.items():
                    by_value.setdefault(_observed(key, v), []).append(n)
                seen_lines += [f"{name}: {v} ({', '.join(ns)})" for v, ns in by_value.items()]
        if not same:
            found = ", ".join(
                f"{n}: {_cell(key, e)} {e.get('observed', '')}".strip() for n, e in entries.items()
            )
            problems.append(f"{fmt_rows(rows)} rows: {name}: {found}")
        lines.append(
            [name, *(_cell(key, entries[o.contender.name]) for o in done), "✓" if same else "✗"]
        )
    headers = ["check", *(o.contender.name for o in done), "agree"]
    table = markdown_table(headers, lines, "l" + "r" * len(done) + "l")
    if seen_lines:
        table += "\n\n" + "\n".join(f"- {line}" for line in seen_lines)
    return table, problems


# ---------------------------------------------------------------- results
def _gx(results: list[tuple[int, dict[str, Outcome]]]) -> Outcome | None:
    for _rows, outcomes in results:
        gx = outcomes.get("gx")
        if gx and gx.ok:
            return gx
    return None


def _pandera_best(outcomes: dict[str, Outcome]) -> Outcome | None:
    done = [outcomes[n] for n in PANDERA if n in outcomes and outcomes[n].ok]
    return min(done, key=lambda o: o.check_s) if done else None


def size_table(
    rows: int, outcomes: dict[str, Outcome], gx: Outcome | None
) -> tuple[str, list[str]]:
    best = _pandera_best(outcomes)
    sliced = gx is not None and gx.rows != rows
    mark = "*" if sliced else ""
    lines: list[list[str]] = []
    notes: list[str] = []
    for name, out in outcomes.items():
        if not out.ok:
            lines.append([name, "failed", *[""] * 10])
            notes.append(f"{name}: failed: {out.failed}")
            continue
        read = out.read_s
        lines.append(
            [
                name,
                "-" if read is None else f"{read:.2f}",
                f"{out.check_s:.2f}",
                " / ".join(f"{r.check_s:.2f}" for r in out.runs),
                f"{out.total_s:.2f}",
                f"{median([r.cpu_s for r in out.runs]):.2f}",
                fmt_count(out.rate),
                fmt_count(out.total_rate),
                fmt_bytes(out.peak_rss),
                fmt_ratio(out.rate / gx.rate if gx else None) + mark,
                fmt_ratio(out.total_rate / gx.total_rate if gx else None) + mark,
                fmt_ratio(out.rate / best.rate if best else None),
            ]
        )
        if out.contender.venv == "headwater":
            notes.append(f"{name}: {out.runs[-1].detail.rpartition('; ')[2]}")
        quarantined = out.runs[-1].quarantined
        if quarantined is not None:
            notes.append(
                f"{name}: {quarantined:,} rows quarantined (each once, however many checks it "
                "failed), fetched as Arrow inside the timed part"
            )
    if sliced and gx is not None:
        notes.append(
            f"`*`: against Great Expectations' rates on its {fmt_rows(gx.rows)}-row slice "
            "(rows/s, not seconds, are compared)"
        )
    if best:
        notes.append(
            f"*vs Pandera* compares with the faster Pandera backend: {best.contender.name}"
        )
    headers = ["contender", "read s", "checks s", "runs (checks s)", "read + checks s", "CPU s"]
    headers += ["rows/s"]
    headers += ["rows/s with read", "peak RSS", "vs GE", "vs GE with read", "vs Pandera"]
    return markdown_table(headers, lines, "lrrrrrrrrrrr"), notes


def targets(results: list[tuple[int, dict[str, Outcome]]]) -> list[str]:
    gx = _gx(results)
    lines = []
    rows, outcomes = results[-1]
    hw = outcomes.get("headwater")
    if hw and hw.ok and gx:
        where = "" if gx.rows == rows else f" (Great Expectations on its {fmt_rows(gx.rows)} slice)"
        ratio = hw.rate / gx.rate
        verdict = "holds" if ratio >= TARGET_VS_GX else "does not hold"
        lines.append(
            f"{fmt_rows(rows)} rows: headwater checks at {ratio:.2f}x Great Expectations' "
            f"rows/s{where}, headwater's read of the Parquet file included and Great "
            f"Expectations' excluded (target ≥ {TARGET_VS_GX:g}x): {verdict}"
        )
        lines.append(
            f"{fmt_rows(rows)} rows: read + checks, both sides: "
            f"{hw.total_rate / gx.total_rate:.2f}x (for information)"
        )
    best = _pandera_best(outcomes)
    if hw and hw.ok and best:
        lines.append(
            f"{fmt_rows(rows)} rows: headwater at {hw.rate / best.rate:.2f}x the rows/s of "
            f"Pandera's faster backend ({best.contender.name}); read + checks "
            f"{hw.total_rate / best.total_rate:.2f}x (no target)"
        )
    problems = [p for r, o in results for p in agreement(r, o)[1]]
    lines.append(
        "every tool finds the same failing rows for every check: "
        + ("holds" if not problems else "DOES NOT HOLD: " + "; ".join(problems))
    )
    return lines


# ---------------------------------------------------------------- the report
CHECK_TABLE = [
    [
        "`not_null(user_id)`",
        '`checks.not_null("user_id")`',
        "`ExpectColumnValuesToNotBeNull`",
        "`Column(nullable=False)`",
    ],
    [
        "`unique(order_id)`",
        '`checks.unique("order_id")`',
        "`ExpectColumnValuesToBeUnique`",
        "`Column(unique=True)`",
    ],
    [
        "`between(amount)`",
        '`checks.between("amount", 0, 100_000)`',
        "`ExpectColumnValuesToBeBetween(min_value=0, max_value=100000)`",
        "`Check.in_range(0, 100000)`",
    ],
    [
        "`in_set(status)`",
        '`checks.in_set("status", [6 values])`',
        "`ExpectColumnValuesToBeInSet`",
        "`Check.isin`",
    ],
    [
        "`matches(email)`",
        '`checks.matches("email", PATTERN)`',
        "`ExpectColumnValuesToMatchRegex`",
        "`Check.str_matches`",
    ],
    [
        "`max_length(country)`",
        '`checks.max_length("country", 2)`',
        "`ExpectColumnValueLengthsToBeBetween(max_value=2)`",
        "`Check.str_length(max_value=2)`",
    ],
    [
        "`row_count`",
        "`checks.row_count(min=1, max=50_000_000)`",
        "`ExpectTableRowCountToBeBetween`",
        "a DataFrame-level `Check`: `len(df)` (pandas) or `pl.len()` (polars) within the bounds",
    ],
    [
        "`freshness`",
        '`checks.freshness("2h", column="created_at")`',
        "`ExpectColumnMaxToBeBetween(min_value=now - 2h)` (GE has no freshness expectation)",
        "a column `Check`: `max() >= now - 2h` (no built-in freshness check)",
    ],
]
"""How each tool spells each check (the headwater column is what the worker declares)."""


NOT_MEASURED = [
    "what happens after the checks: headwater's registry records, the quarantine table's Delta "
    "`MERGE` (`write_quarantine`), Great Expectations' Data Docs, checkpoints, actions and "
    "stores (the context is ephemeral; only `batch.validate` is timed), Pandera's reports",
    "`unique` against stored rows (`stored_keys=`): the batch is checked alone, as on a source",
    "dtype checks and coercion: the Pandera columns declare no dtype, and headwater's "
    "`checks.schema` is not among the eight",
    "`mostly`: every check is strict, so every offending row counts",
    "Great Expectations on Spark or SQL, Pandera on PySpark or Ibis",
    "other machines: pandas, and so Great Expectations and Pandera's pandas backend, use one "
    "core; DuckDB and polars use both cores of this machine (see *CPU s*)",
]


def report(
    args: argparse.Namespace,
    results: list[tuple[int, dict[str, Outcome]]],
    facts: dict[str, str],
) -> str:
    intro = (
        f"Eight typical checks over a generated Parquet table (`benchmarks/.work/"
        f"quality-v{spec.DATA_VERSION}-N.parquet`, zstd): `order_id` bigint (unique but for "
        "2 rows in 1,000, which share an id), `user_id` bigint (1 in 211 null), `amount` double "
        "(1 in 997 negative, 1 in 1,009 above 100,000), `status` text (6 values; 1 in 1,013 "
        "outside them), `email` text (1 in 499 not matching "
        f"`{spec.EMAIL_PATTERN}`), `country` text (1 in 2,003 longer than 2), `created_at` "
        "timestamp with time zone (30 days up to 2026-11-22 00:00 UTC); every column but "
        "`order_id` has nulls (1 in 200 to 1 in 1,200). Every row-level check finds failures; "
        "`row_count` passes; `freshness` fails, as every tool judges it at the same fixed "
        '"now", 3 hours after the newest possible event. Value checks skip nulls in all three '
        "tools. Each contender runs in a process of its own "
        f"({args.repeat} run(s), round-robin; times are medians): headwater in its own "
        "virtualenv, the peers in `benchmarks/.venv-peers`. *read s* is the Parquet file read "
        "into the tool's frame; *checks s* the evaluation alone (for `headwater` and "
        "`headwater-quarantine`, which read the file inside the evaluation, the read is in "
        "it); *CPU s* the process's user + system time during the checks, all threads; "
        "*peak RSS* the whole process (`wait4`). *rows/s* is rows over *checks s*; *vs GE* and "
        "*vs Pandera* are ratios of rows/s (above 1x: faster than the peer)."
    )
    parts = [
        textwrap.fill(intro, width=100, break_on_hyphens=False, break_long_words=False),
        "",
        f"Command: `{args.command}`",
        "",
        "| contender | what runs |",
        "| --- | --- |",
        *(
            f"| {c.name} | {c.what} |"
            for c in CONTENDERS.values()
            if any(c.name in o for _r, o in results)
        ),
        "",
        "The same checks in each tool:",
        "",
        markdown_table(["check", "headwater", "Great Expectations 1.x", "Pandera"], CHECK_TABLE),
        "",
        "### Machine",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
    ]
    gx = _gx(results)
    for rows, outcomes in results:
        table, notes = size_table(rows, outcomes, gx)
        parts += ["", f"### {rows:,} rows", "", table]
        if notes:
            parts += ["", *(f"- {n}" for n in notes)]
    for rows, outcomes in results:
        table, _problems = agreement(rows, outcomes)
        parts += [
            "",
            f"### Failing rows per check, {rows:,} rows",
            "",
            "Rows failing each row-level check (every copy of a duplicated id counts), pass or "
            "fail for the batch-level ones. The benchmark stops, leaving this page alone, when "
            "the tools disagree. What the batch-level checks saw (Pandera reports no observed "
            "value; freshness agrees within 1 ms, as DuckDB rounds to the millisecond):",
            "",
            table,
        ]
    parts += ["", "### Targets", "", *(f"- {line}" for line in targets(results))]
    parts += ["", "### Not measured", "", *(f"- {line}" for line in NOT_MEASURED)]
    return "\n".join(parts) + "\n"
