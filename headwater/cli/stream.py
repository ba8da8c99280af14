"""``headwater stream``: streaming workers in this process, or N worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.feature_store import FeatureStore
    from headwater.orchestration.workers import StreamStats


def run_workers(
    repo: Path, views: list[str], *, workers: int, until_caught_up: bool, max_batch: int
) -> int:
    """Start ``workers`` processes of ``headwater stream`` (same views, same consumer groups,
    so Kafka shares the partitions between them); forward SIGINT/SIGTERM; return the worst
    exit status."""
    command = [sys.executable, "-m", "headwater", "stream", *views, "--repo", str(repo)]
    command += ["--max-batch", str(max_batch)]
    if until_caught_up:
        command.append("--until-caught-up")
    children = [subprocess.Popen(command) for _ in range(workers)]

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return max((abs(c) for c in codes), default=0)


def run_here(
    store: FeatureStore, views: list[str] | None, *, until_caught_up: bool, max_batch: int
) -> list[StreamStats]:
    """Run the workers in this process until SIGINT/SIGTERM (or caught up)."""
    from headwater.orchestration.workers import StreamOptions

    options = StreamOptions(until_caught_up=until_caught_up, max_batch_messages=max_batch)

    def stop(_signum: int, _frame: Any) -> None:
        options.stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    return store.stream(views or None, options=options)


def show(stats: list[StreamStats]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("view", "messages", "rows out", "dead letters", "late", "watermark", "pid")
    for s in stats:
        mark = "-" if s.watermark_ms is None else str(s.watermark_ms)
        table.add_row(
            s.view,
            str(s.messages),
            str(s.rows_out),
            str(s.dead_letters),
            str(s.late),
            mark,
            str(os.getpid()),
        )
    Console(highlight=False).print(table)
