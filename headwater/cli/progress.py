"""Progress of long commands (``run``, ``backfill``, ``history``, ``quickstart``).

On a terminal (stdout and stderr both), a spinner line on stderr shows the step under way and,
while a source is read, the rows read so far and their rate (database and Kafka sources, as
they stream) or how far the DuckDB query under way has come (file sources, read inside DuckDB:
``reading events · 42%``, then the rows once counted); it is cleared at the end. When
output goes to a file or a pipe (cron, CI, ``| tee``) there is no spinner and no control
character: only the plain lines each command prints as things finish.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def interactive() -> bool:
    """Whether both stdout and stderr are terminals (spinners allowed)."""
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Steps:
    """What one task tells its spinner: ``step(message)``, ``rows(count)`` and
    ``percent(value)`` (of the DuckDB query under way; :attr:`progress` is ``None`` when
    nothing is shown, so nothing polls for it)."""

    def __init__(self, update: Callable[[str], None], label: str, *, live: bool = False) -> None:
        self._update = update
        self._step = label
        self._live = live
        self._started = time.perf_counter()
        self._shown = 0.0
        self._rows = ""
        self._percent: float | None = None

    @property
    def progress(self) -> Callable[[float], None] | None:
        """:meth:`percent` on a terminal; ``None`` otherwise."""
        return self.percent if self._live else None

    def step(self, message: str) -> None:
        self._step = message
        self._percent = None
        self._update(self._line())

    def rows(self, count: int) -> None:
        now = time.perf_counter()
        if now - self._shown < 0.1:  # at most ten updates a second
            return
        self._shown = now
        seconds = max(now - self._started, 1e-6)
        self._rows = f"{count:,} rows · {count / seconds:,.0f} rows/s"
        self._update(self._line())

    def percent(self, value: float) -> None:
        """The query under way is ``value`` percent done (told about ten times a second)."""
        self._percent = value
        self._update(self._line())

    def _line(self) -> str:
        parts = [self._step]
        if self._percent is not None:
            parts.append(f"{self._percent:.0f}%")
        if self._rows:
            parts.append(self._rows)
        return " · ".join(parts)


class Progress:
    """A spinner per task on a terminal; nothing otherwise (see the module docstring)."""

    def __init__(self) -> None:
        self._bar: Any = None
        if interactive():
            from rich.console import Console
            from rich.progress import Progress as Bar
            from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bar = Bar(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    @contextmanager
    def task(self, label: str) -> Iterator[Steps]:
        """A spinner for one task (a view's run), removed when it ends."""
        bar = self._bar
        if bar is None:
            yield Steps(lambda _message: None, label)
            return
        task = bar.add_task(label, total=None)
        try:
            yield Steps(lambda message: bar.update(task, description=message), label, live=True)
        finally:
            bar.remove_task(task)

    def print(self, console: Any, text: str) -> None:
        """Print a finished line (above the spinner on a terminal; never wrapped)."""
        console.print(text, soft_wrap=True)
