"""The report of ``benchmarks/stream.py``: throughput and latency tables, targets, Markdown."""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass

import _stream_latency as latency
from _common import fmt_bytes, fmt_count, fmt_ratio, fmt_rows, markdown_table
from _stream_latency import WINDOW_MS


@dataclass
class Outcome:
    name: str
    what: str
    events: int = 0
    wall_s: float = 0.0
    """The whole process, start to exit."""
    processing_s: float = 0.0
    """From the end of partition assignment to the exit (what events/s is computed from)."""
    cpu_s: float = 0.0
    peak_rss: int = 0
    detail: str = ""
    failed: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.processing_s if self.processing_s > 0 else 0.0


# ---------------------------------------------------------------- report
def _ceiling(outcomes: list[Outcome]) -> Outcome | None:
    raws = [o for o in outcomes if o.name.startswith("raw") and not o.failed]
    return max(raws, key=lambda o: o.rate) if raws else None


def throughput_table(outcomes: list[Outcome]) -> str:
    ceiling = _ceiling(outcomes)
    quix = next((o for o in outcomes if o.name == "quix" and not o.failed), None)
    rows = []
    for o in outcomes:
        if o.failed:
            rows.append([o.name, "failed", *[""] * 7])
            continue
        rows.append(
            [
                o.name,
                f"{o.events:,}",
                f"{o.wall_s:.1f}",
                f"{o.processing_s:.1f}",
                fmt_count(o.rate),
                f"{o.cpu_s:.1f}",
                fmt_bytes(o.peak_rss),
                fmt_ratio(o.rate / quix.rate if quix else None),
                fmt_ratio(o.rate / ceiling.rate if ceiling else None),
            ]
        )
    headers = ["contender", "events", "process s", "processing s", "events/s", "CPU s"]
    headers += ["peak RSS", "vs quix", "vs raw ceiling"]
    return markdown_table(headers, rows, "lrrrrrrrr")


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
    quix = next((o for o in outcomes if o.name == "quix" and not o.failed), None)
    ceiling = _ceiling(outcomes)
    for hw in (o for o in outcomes if o.name.startswith("headwater") and not o.failed):
        if quix:
            ratio = hw.rate / quix.rate
            verdict = "holds" if ratio >= 5 else "does not hold"
            notes.append(
                f"{hw.name} at {ratio:.2f}x Quix Streams' events/s, both on one core "
                f"(target ≥ 5x): {verdict}"
            )
        if ceiling:
            ratio = hw.rate / ceiling.rate
            verdict = "holds" if ratio >= 0.5 else "does not hold"
            notes.append(
                f"{hw.name} at {ratio:.2f}x the raw ceiling ({ceiling.name}) "
                f"(target ≥ 0.5x): {verdict}"
            )
    if agreement:
        ok = all(a for a, _ in agreement)
        notes.append(
            "headwater and Quix agree on every window: " + ("holds" if ok else "does not hold")
        )
    return notes


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
        *(f"| {o.name} | {o.what} |" for o in outcomes),
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
        _fill(
            "*events/s* = events / *processing s*, from the end of partition assignment "
            "(headwater's `partitions assigned` log line, the end of Quix's `_on_assign`, raw's "
            "`assign()`) to the end: for headwater the process exit (its last commit done), for "
            "Quix the return of `app.run()` (its final checkpoint flushed the sink), for raw the "
            "last batch decoded. *process s* is the whole process: interpreter start, imports, "
            "the consumer-group join (about 3 s on this broker). *CPU s* (user + system, all "
            "threads) and *peak RSS* are the whole process's, from `wait4`. The ratios compare "
            "events/s; the raw ceiling is the faster raw row."
        ),
        "",
        *(f"- {o.name}: {o.failed or o.detail}" for o in outcomes if o.failed or o.detail),
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
