"""How a streaming worker runs, and its running totals."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StreamOptions:
    """How a worker runs.

    Attributes:
        until_caught_up: stop once every partition reached the end offset it had at start
            (after emitting what the watermark closed and committing), instead of running on.
        max_batch_messages: most messages in one micro-batch.
        max_batch_wait_s: longest wait for a micro-batch to fill.
        stop: set it to stop the worker after the current micro-batch.
        on_batch: called after every committed micro-batch with the running totals.
    """

    until_caught_up: bool = False
    max_batch_messages: int = 200_000
    max_batch_wait_s: float = 0.5
    stop: threading.Event = field(default_factory=threading.Event)
    on_batch: Callable[[StreamStats], None] | None = None


@dataclass
class StreamStats:
    """Running totals of one worker."""

    view: str
    run_id: str = ""
    messages: int = 0
    events: int = 0
    rows_out: int = 0
    dead_letters: int = 0
    late: int = 0
    batches: int = 0
    watermark_ms: int | None = None
    partitions: list[int] = field(default_factory=list)
    dead_by_check: dict[str, int] = field(default_factory=dict)
    rows_quarantined: int = 0
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Checks that did not pass in some micro-batch: action and rows failed in all."""

    def details(self) -> dict[str, Any]:
        """What the run history keeps of the totals, besides rows in and out."""
        return {
            "messages": self.messages,
            "dead_letters": self.dead_letters,
            "dead_letters_by_check": self.dead_by_check,
            "late": self.late,
            "batches": self.batches,
            "watermark_ms": self.watermark_ms,
            "rows_quarantined": self.rows_quarantined,
            "quality": self.quality,
        }
