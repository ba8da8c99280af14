"""The report of ``benchmarks/stream.py``: throughput and latency tables, targets, Markdown."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import _stream_latency as latency
from _common import fmt_bytes, fmt_count, fmt_ratio, fmt_rows, markdown_table, median
from _stream_latency import WINDOW_MS


@dataclass
class Outcome:
    name: str
    what: str
    events: int = 0
    wall_s: float = 0.0
    """The whole process, start to exit."""
    processing_s: float = 0.0
    """From the end of partition assignment to the end of the work (headwater's "caught up"
    log line, the return of Quix's ``app.run()``, raw's last batch decoded): events/s is
    computed from it."""
    cpu_s: float = 0.0
    peak_rss: int = 0
    detail: str = ""
    failed: str = ""
    round_no: int = 0
    """1 to ``--rounds`` for a contender run once per round, 0 for a single run."""

    @property
    def rate(self) -> float:
        return self.events / self.processing_s if self.processing_s > 0 else 0.0


@dataclass
class Contender:
    """One row of the throughput table: the run of a contender, or its runs over the rounds."""

    name: str
    runs: list[Outcome]

    @property
    def good(self) -> list[Outcome]:
        return [o for o in self.runs if not o.failed]

    @property
    def rounds(self) -> bool:
        return any(o.round_no for o in self.runs)

    def median(self, value: Callable[[Outcome], float]) -> float:
        """The median of ``value`` over the runs that did not fail (0 if none)."""
        good = self.good
        return median([value(o) for o in good]) if good else 0.0

    @property
    def rate(self) -> float:
        return self.median(lambda o: o.rate)


def contenders(outcomes: list[Outcome]) -> list[Contender]:
    """The outcomes grouped by contender, in the order they first appear."""
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(o.name, []).append(o)
    return [Contender(name, runs) for name, runs in groups.items()]


def _find(rows: list[Contender], name: str) -> Contender | None:
    return next((c for c in rows if c.name == name and c.good), None)


# ---------------------------------------------------------------- report
def _reference(rows: list[Contender]) -> Contender | None:
    """What *vs raw* divides by: raw-pyarrow (its median over the rounds), else the faster
    raw contender."""
    pyarrow = _find(rows, "raw-pyarrow")
    if pyarrow:
        return pyarrow
    raws = [c for c in rows if c.name.startswith("raw") and c.good]
    return max(raws, key=lambda c: c.rate) if raws else None


def round_pairs(outcomes: list[Outcome]) -> list[tuple[int, Outcome | None, Outcome | None]]:
    """(round, raw-pyarrow's run, headwater's run) for every round, in order."""
    raws = {o.round_no: o for o in outcomes if o.round_no and o.name == "raw-pyarrow"}
    hws = {o.round_no: o for o in outcomes if o.round_no and o.name.startswith("headwater")}
    return [(r, raws.get(r), hws.get(r)) for r in sorted(raws.keys() | hws.keys())]


def _pair_ratio(raw: Outcome | None, hw: Outcome | None) -> float | None:
    if raw is None or hw is None or raw.failed or hw.failed or raw.rate <= 0:
        return None
    return hw.rate / raw.rate


def round_ratios(outcomes: list[Outcome]) -> list[float]:
    """Each round's headwater events/s / the raw-pyarrow events/s measured just before it."""
    ratios = (_pair_ratio(raw, hw) for _, raw, hw in round_pairs(outcomes))
    return [r for r in ratios if r is not None]


def headline_ratio(outcomes: list[Outcome]) -> float | None:
    """headwater / raw-pyarrow: the median of the per-round ratios."""
    ratios = round_ratios(outcomes)
    return median(ratios) if ratios else None


def _rate_cell(c: Contender) -> str:
    rates = [o.rate for o in c.good]
    if not c.rounds or len(rates) < 2:
        return fmt_count(c.rate)
    low, high = fmt_count(min(rates)), fmt_count(max(rates))
    return f"{fmt_count(c.rate)} ({low}–{high})"  # noqa: RUF001 (a range: an en dash)


def throughput_table(outcomes: list[Outcome]) -> str:
    rows_in = contenders(outcomes)
    reference = _reference(rows_in)
    quix = _find(rows_in, "quix")
    rows = []
    for c in rows_in:
        if not c.good:
            rows.append([c.name, "failed", *[""] * 7])
            continue
        rows.append(
            [
                c.name,
                f"{round(c.median(lambda o: o.events)):,}",
                f"{c.median(lambda o: o.wall_s):.1f}",
                f"{c.median(lambda o: o.processing_s):.1f}",
                _rate_cell(c),
                f"{c.median(lambda o: o.cpu_s):.1f}",
                fmt_bytes(c.median(lambda o: o.peak_rss)),
                fmt_ratio(c.rate / quix.rate if quix else None),
                fmt_ratio(c.rate / reference.rate if reference else None),
            ]
        )
    headers = ["contender", "events", "process s", "processing s", "events/s", "CPU s"]
    headers += ["peak RSS", "vs quix", "vs raw"]
    return markdown_table(headers, rows, "lrrrrrrrr")


def rounds_table(outcomes: list[Outcome]) -> str:
    """Every round's raw-pyarrow and headwater events/s and their ratio, then the medians."""
    pairs = round_pairs(outcomes)
    hw_name = next((hw.name for _, _, hw in pairs if hw is not None), "headwater")

    def cell(o: Outcome | None) -> str:
        if o is None:
            return "-"
        return "failed" if o.failed else fmt_count(o.rate)

    rows = [[str(r), cell(raw), cell(hw), fmt_ratio(_pair_ratio(raw, hw))] for r, raw, hw in pairs]
    raw_rates = [o.rate for _, o, _ in pairs if o is not None and not o.failed]
    hw_rates = [o.rate for _, _, o in pairs if o is not None and not o.failed]
    rows.append(
        [
            "median",
            fmt_count(median(raw_rates)) if raw_rates else "-",
            fmt_count(median(hw_rates)) if hw_rates else "-",
            fmt_ratio(headline_ratio(outcomes)),
        ]
    )
    headers = ["round", "raw-pyarrow events/s", f"{hw_name} events/s"]
    headers += [f"{hw_name} ÷ raw-pyarrow"]
    return markdown_table(headers, rows, "rrrr")


def _details(outcomes: list[Outcome]) -> list[str]:
    """One line per contender with what its runs said (one per round when they differ)."""
    lines = []
    for c in contenders(outcomes):
        said = [(o.round_no, o.failed or o.detail) for o in c.runs if o.failed or o.detail]
        if not said:
            continue
        if len(c.runs) == 1:
            lines.append(f"- {c.name}: {said[0][1]}")
        elif len(said) == len(c.runs) and len({text for _, text in said}) == 1:
            lines.append(f"- {c.name} (each of the {len(c.runs)} rounds): {said[0][1]}")
        else:
            lines += [f"- {c.name}, round {r}: {text}" for r, text in said]
    return lines


def latency_table(results: list[latency.Latency]) -> str:
    rows = []
    for r in results:
        if not r.samples:
            rows.append([r.name, "failed" if r.failed else "no samples", *[""] * 5])
            continue
        ms = [s * 1000 for s in r.samples]
        rows.append(
            [
                r.name,
                str(r.windows) if r.windows else "-",
                f"{len(ms):,}",
                f"{latency.percentile(ms, 50):.0f}",
                f"{latency.percentile(ms, 99):.0f}",
                f"{max(ms):.0f}",
                str(r.missing) if r.windows else "-",
            ]
        )
    headers = ["contender", "windows", "samples", "p50 ms", "p99 ms", "max ms", "never seen"]
    return markdown_table(headers, rows, "lrrrrrr")


def targets(outcomes: list[Outcome], agreement: list[tuple[bool, str]]) -> list[str]:
    notes = []
    rows = contenders(outcomes)
    quix = _find(rows, "quix")
    reference = _reference(rows)
    headline = headline_ratio(outcomes)
    for hw in (c for c in rows if c.name.startswith("headwater") and c.good):
        if quix:
            ratio = hw.rate / quix.rate
            verdict = "holds" if ratio >= 5 else "does not hold"
            notes.append(
                f"{hw.name} at {ratio:.2f}x Quix Streams' events/s, both on one core "
                f"(target ≥ 5x): {verdict}"
            )
        if hw.rounds and headline is not None:
            verdict = "holds" if headline >= 0.5 else "does not hold"
            count = len(round_ratios(outcomes))
            notes.append(
                f"{hw.name} at {headline:.2f}x raw-pyarrow's events/s, the median of {count} "
                f"per-round ratio{'s' if count > 1 else ''} (target ≥ 0.5x): {verdict}"
            )
        elif reference:
            ratio = hw.rate / reference.rate
            verdict = "holds" if ratio >= 0.5 else "does not hold"
            notes.append(
                f"{hw.name} at {ratio:.2f}x the raw ceiling ({reference.name}"
                f"{', its median' if reference.rounds else ''}) "
                f"(target ≥ 0.5x): {verdict}"
            )
    if agreement:
        ok = all(a for a, _ in agreement)
        who = "headwater and Quix agree" if quix else "headwater's runs agree (Quix did not run)"
        notes.append(f"{who} on every window: " + ("holds" if ok else "does not hold"))
    return notes


def throughput_method(outcomes: list[Outcome]) -> str:
    """How the throughput table is measured, for the paragraph under it."""
    rows = contenders(outcomes)
    reference = _reference(rows)
    against = (
        f"{reference.name}'s {'median ' if reference.rounds else ''}events/s"
        if reference
        else "the raw ceiling (no raw contender ran)"
    )
    text = (
        "*events/s* = events / *processing s*, from the end of partition assignment "
        "(headwater's `partitions assigned` log line, the end of Quix's `_on_assign`, raw's "
        "`assign()`) to the end of the work: for headwater its `caught up` log line "
        "(everything up to the end offsets written and committed, logged just before it "
        "closes its consumer and exits; the process exit if that line is missing, which the "
        "notes below then say), for Quix the return of `app.run()` (its final checkpoint "
        "flushed the sink), for raw the last batch decoded (its clock stops before it closes "
        "its consumer). *process s* is the whole process: interpreter start, imports, the "
        "consumer-group join (about 3 s on this broker), closing. *CPU s* (user + system, all "
        "threads) and *peak RSS* are the whole process's, from `wait4`. The ratios compare "
        f"events/s; *vs raw* divides by {against}."
    )
    repeated = [c for c in rows if c.rounds]
    if repeated:
        names = " and ".join(c.name for c in repeated)
        text += (
            f" The {names} rows are medians over the rounds: *events/s* is the median, with "
            "the lowest and highest round in brackets, and every other column is its own "
            "median (for an even number of rounds, the mean of the middle two). The other rows "
            "are single runs."
        )
    return text


def rounds_section(args: argparse.Namespace, outcomes: list[Outcome]) -> list[str]:
    """The rounds of raw-pyarrow and headwater and the headline ratio, if there were rounds."""
    pairs = round_pairs(outcomes)
    if not pairs:
        return []
    ratios = round_ratios(outcomes)
    headline = headline_ratio(outcomes)
    hw = next((h.name for _, _, h in pairs if h is not None), "headwater")
    rows = contenders(outcomes)
    raw_row, hw_row = _find(rows, "raw-pyarrow"), _find(rows, hw)
    of_medians = (
        f" (the ratio of the two medians in the table above is "
        f"{fmt_ratio(hw_row.rate / raw_row.rate)})"
        if raw_row and hw_row and raw_row.rate > 0
        else ""
    )
    if headline is None:
        summary = f"No round has both a raw-pyarrow and a {hw} run: no ratio."
    else:
        summary = (
            f"{hw} ÷ raw-pyarrow = **{fmt_ratio(headline)}**: the median of the "
            f"{len(ratios)} per-round ratio{'s' if len(ratios) > 1 else ''}, each round's "
            f"{hw} events/s divided by the raw-pyarrow events/s measured just before it"
            f"{of_medians}."
        )
    times = f"{args.rounds} times" if args.rounds > 1 else "once"
    return [
        "",
        f"### {hw} ÷ raw-pyarrow, round by round",
        "",
        rounds_table(outcomes),
        "",
        _fill(
            f"{summary} On a noisy machine the same contender's events/s varies from one run "
            f"to the next (by ±15% on a shared 2-core VM), so raw-pyarrow and {hw} run {times} "
            f"each, alternating (raw-pyarrow, {hw}, raw-pyarrow, {hw}, ...): each ratio "
            "compares two runs made one after the other, in the same state of the machine, "
            "and the median leaves out a round that a burst of other work slowed. Every "
            f"{hw} round reads the topic from the start in a fresh project: its own consumer "
            "group, registry, Delta tables and Redis key prefix."
        ),
    ]


def _fill(text: str) -> str:
    return textwrap.fill(text, width=100, break_on_hyphens=False, break_long_words=False)


def report(
    args: argparse.Namespace,
    dataset: str,
    events: int,
    outcomes: list[Outcome],
    agreement: list[tuple[bool, str]],
    latencies: list[latency.Latency],
    facts: dict[str, str],
) -> str:
    command = " ".join(["scripts/bench stream", *args.argv])
    parts = [
        f"Command: `{command}`",
        "",
        _fill(dataset),
        "",
        "| contender | what runs |",
        "| --- | --- |",
        *(f"| {c.name} | {c.runs[0].what} |" for c in contenders(outcomes)),
        "",
        "Quix Streams has no distinct count: its window keeps the distinct page ids in a list "
        "(a custom `Aggregator`).",
        "",
        "### Machine",
        "",
        *(f"- {k}: {v}" for k, v in facts.items()),
        "",
        f"### Throughput ({fmt_rows(events)} events)",
        "",
        throughput_table(outcomes),
        "",
        _fill(throughput_method(outcomes)),
        "",
        *_details(outcomes),
        *rounds_section(args, outcomes),
        "",
        "### Agreement",
        "",
        *(f"- {'✓' if ok else '✗'} {line}" for ok, line in agreement),
        "",
        _fill(
            "headwater's windows are read from its offline Delta table (the online store keeps "
            "only the latest window per user), Quix's from the Redis keys its sink wrote. They "
            "are compared window by window — count, sum and distinct count for every (user, "
            "window end) — with each other and with the values computed from the events as "
            "they were produced."
        ),
    ]
    if latencies:
        speed = (
            f"; event time runs {args.latency_speedup:g}x as fast as the wall clock, so a "
            f"window closes every {WINDOW_MS / 1000 / args.latency_speedup:g} s"
            if args.latency_speedup != 1
            else "; event time = the wall clock"
        )
        parts += [
            "",
            "### Latency",
            "",
            latency_table(latencies),
            "",
            _fill(
                f"Each contender in turn reads a fresh topic while {args.latency_rate:g} events "
                f"per second ({args.latency_users} users) are produced for "
                f"{args.latency_seconds:g} s{speed}. A window can close once the watermark "
                "passes its end, that is once every partition has received an event whose time "
                "is at least the window end + 5 s (the allowed lateness; Quix's grace). The "
                "*window-closing event* is the last of those to be produced. Latency is the "
                "time from the window-closing event being handed to the producer to the "
                "window's value for a user being readable in Redis; one sample per polled user "
                f"and window. {args.latency_sampled} users are polled every "
                f"{args.poll_interval * 1000:g} ms (headwater: the `ts` field of the user's "
                "online hash reaches the window end; Quix: the window's key exists). Windows "
                f"closing in the first {args.latency_warmup:g} s are left out. *never seen*: "
                f"closed (user, window) pairs still not readable {args.latency_drain:g} s after "
                "production stopped. raw has no windows: its samples are per message, from the "
                "producer's create time to its batch being decoded: the transport floor with the "
                "same 0.5 s wait as headwater's micro-batches, plus the broker's fetch long-poll "
                "(librdkafka's `fetch.wait.max.ms`, 500 ms by default, applies to every "
                "contender)."
            ),
            "",
            *(f"- {r.name}: {r.what}" + (f" — {r.failed}" if r.failed else "") for r in latencies),
        ]
    verdicts = targets(outcomes, agreement)
    if verdicts:
        parts += ["", "### Targets", "", *(f"- {v}" for v in verdicts)]
    return "\n".join(parts) + "\n"
