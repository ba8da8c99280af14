"""The latency phase of ``benchmarks/stream.py``: events produced live while a contender runs.

A producer thread sends ``rate`` events per second to a fresh topic, event time advancing
``speedup`` times as fast as the wall clock, and notes, per partition, the wall time at which the
first event whose time reaches a window's end + the allowed lateness was produced (the
*window-closing event*). A poller thread reads Redis every ``interval`` seconds and notes when
each closed window of each sampled user became readable. Latency = readable - closing, where
closing is the latest of the partitions' window-closing events (the watermark is a minimum over
partitions).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import last_line

PARTITIONS = 4
WINDOW_MS = 60_000
LATENESS_MS = 5_000

Visible = Callable[[Any, list[tuple[int, int]]], list[tuple[int, int]]]
"""(redis client, pending (user, window end) pairs) -> the pairs now readable."""


@dataclass
class Live:
    """What the live producer did: crossing times of window ends, per partition."""

    users: list[int]
    sampled: list[int]
    rate: float
    speedup: float
    pages: int
    warmup_s: float
    linger_ms: int = 5
    started: float = 0.0
    produced: int = 0
    crossings: dict[int, dict[int, float]] = field(default_factory=dict)
    """partition -> window end -> wall time its window-closing event was produced."""
    windows: dict[int, set[int]] = field(default_factory=dict)
    """sampled user -> window ends it had events in."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def closing_time(self, end: int) -> float | None:
        """When the window ending at ``end`` could close (None: not yet)."""
        times = [self.crossings.get(p, {}).get(end) for p in range(PARTITIONS)]
        found = [t for t in times if t is not None]
        return max(found) if len(found) == PARTITIONS else None

    def measured(self, end: int) -> bool:
        """Windows closing in the warm-up (the contender's first fetches) are left out."""
        closing = self.closing_time(end)
        return closing is not None and closing >= self.started + self.warmup_s


def produce_live(bootstrap: str, topic: str, live: Live, seconds: float) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": live.linger_ms})
    rng = random.Random(7)
    sampled = set(live.sampled)
    t0 = time.time()
    live.started = t0
    e0 = int(t0 * 1000)
    next_end: dict[int, int | None] = dict.fromkeys(range(PARTITIONS))
    n = 0
    while (elapsed := time.time() - t0) < seconds:
        target = int(elapsed * live.rate)
        ts = e0 + int(elapsed * 1000 * live.speedup)
        end = ts - ts % WINDOW_MS + WINDOW_MS
        while n < target:
            user = live.users[rng.randrange(len(live.users))]
            partition = user % PARTITIONS
            page = (user * 7 + rng.randrange(8)) % live.pages
            value = (
                f'{{"user_id":{user},"page_id":"/product/{page}",'
                f'"amount":{rng.randrange(400) / 4!r},"event_timestamp":{ts}}}'
            ).encode()
            sent = time.time()
            producer.produce(topic, value, str(user).encode(), partition)
            n += 1
            with live.lock:
                if user in sampled:
                    live.windows.setdefault(user, set()).add(end)
                first = next_end[partition]
                if first is None:
                    first = end
                while first + LATENESS_MS <= ts:
                    live.crossings.setdefault(partition, {})[first] = sent
                    first += WINDOW_MS
                next_end[partition] = first
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(30)
    live.produced = n


class Poller(threading.Thread):
    """Notes when each (sampled user, closed window) became readable in Redis."""

    def __init__(self, client: Any, live: Live, visible: Visible, interval: float) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.live = live
        self.check = visible
        self.interval = interval
        self.seen: dict[tuple[int, int], float] = {}
        self.stop = threading.Event()

    def pending(self) -> list[tuple[int, int]]:
        with self.live.lock:
            return [
                (user, end)
                for user, ends in self.live.windows.items()
                for end in ends
                if (user, end) not in self.seen and self.live.closing_time(end) is not None
            ]

    def run(self) -> None:
        while not self.stop.is_set():
            todo = self.pending()
            if todo:
                at = time.time()
                for key in self.check(self.client, todo):
                    self.seen[key] = at
            time.sleep(self.interval)


def headwater_visible(prefix: str, view: str) -> Visible:
    """headwater's online hash of a user holds the latest window; ``ts`` is its end."""

    def check(client: Any, todo: list[tuple[int, int]]) -> list[tuple[int, int]]:
        users = sorted({u for u, _ in todo})
        pipe = client.pipeline(transaction=False)
        for user in users:
            pipe.hget(f"{prefix}{view}:[{user}]", "ts")
        latest = {
            u: -1 if v is None else int(v) for u, v in zip(users, pipe.execute(), strict=True)
        }
        return [(u, e) for u, e in todo if latest[u] >= e]

    return check


def quix_visible(prefix: str) -> Visible:
    """The Quix sink writes one key per user and window."""

    def check(client: Any, todo: list[tuple[int, int]]) -> list[tuple[int, int]]:
        pipe = client.pipeline(transaction=False)
        for user, end in todo:
            pipe.exists(f"{prefix}{user}:{end}")
        return [key for key, found in zip(todo, pipe.execute(), strict=True) if found]

    return check


@dataclass
class Latency:
    name: str
    what: str
    windows: int = 0
    samples: list[float] = field(default_factory=list)
    missing: int = 0
    produced: int = 0
    failed: str = ""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class LiveChild:
    """A contender that runs until SIGTERM; its output goes to files."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, work: Path, tag: str):
        self.out_path = work / f"{tag}.out"
        self.err_path = work / f"{tag}.err"
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )

    def wait_ready(self, marker: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if marker in self.err_path.read_text(errors="replace"):
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 60) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        out = self.out_path.read_text(errors="replace")
        return self.proc.returncode, out, self.err_path.read_text(errors="replace")


def measure(
    *,
    name: str,
    what: str,
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    work: Path,
    marker: str,
    bootstrap: str,
    topic: str,
    live: Live,
    seconds: float,
    redis: Any,
    visible: Visible | None,
    interval: float,
    drain_s: float,
) -> Latency:
    """Start the contender, produce live for ``seconds``, collect the latencies, stop it."""
    result = Latency(name, what)
    child = LiveChild(cmd, env, cwd, work, f"live-{name}")
    if not child.wait_ready(marker, 120):
        code, _out, err = child.stop()
        result.failed = f"did not get its partitions (exit {code}): {last_line(err)}"
        return result
    poller = Poller(redis, live, visible, interval) if visible else None
    if poller:
        poller.start()
    produce_live(bootstrap, topic, live, seconds)
    result.produced = live.produced
    if poller:
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and poller.pending():
            time.sleep(0.1)
        poller.stop.set()
        poller.join()
    else:
        time.sleep(min(drain_s, 3.0))  # the last batches
    code, out, err = child.stop()
    if code not in (0, -signal.SIGTERM):
        result.failed = f"exited with {code}: {last_line(err)}"
    if poller:
        measured = {(u, e): t for (u, e), t in poller.seen.items() if live.measured(e)}
        for (_user, end), seen in measured.items():
            closing = live.closing_time(end)
            assert closing is not None
            result.samples.append(seen - closing)
        result.windows = len({end for _u, end in measured})
        result.missing = sum(1 for _u, end in poller.pending() if live.measured(end))
        return result
    try:
        report = json.loads(last_line(out))
    except ValueError:
        result.failed = result.failed or f"no report: {last_line(err)}"
        return result
    since = live.started + live.warmup_s
    result.samples = [done - sent for sent, done in report["latencies"] if sent >= since]
    return result
