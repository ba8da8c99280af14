"""Python's cyclic garbage collector, paced by micro-batches while streaming workers run.

A micro-batch allocates hundreds of thousands of objects (one per Kafka message), and the
collector, triggered by allocation counts, would traverse them — and every long-lived object of
the process — again and again: on one core that took as much time as the consumer itself. While
any worker runs, the objects that exist at its start are frozen (left out of collections),
automatic collection is off, and each worker collects the young generations after each
micro-batch and everything every ``FULL_EVERY`` batches. The pacing is process-wide: workers of
several views in one process share it.
"""

from __future__ import annotations

import gc
import threading


class BatchCollector:
    """Collections paced by micro-batches (see the module docstring)."""

    FULL_EVERY = 50

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._was_enabled = True
        self._batches = 0

    def start(self) -> None:
        """A worker starts: the first one freezes what exists and turns automatic collection
        off."""
        with self._lock:
            if self._running == 0:
                self._was_enabled = gc.isenabled()
                gc.collect()
                gc.freeze()
                gc.disable()
            self._running += 1

    def batch_done(self) -> None:
        """A micro-batch is done: collect the young generations (everything, now and then)."""
        with self._lock:
            self._batches += 1
            full = self._batches % self.FULL_EVERY == 0
        gc.collect(2 if full else 1)

    def stop(self) -> None:
        """A worker stopped: the last one restores the collector as it found it."""
        with self._lock:
            self._running -= 1
            if self._running == 0:
                gc.unfreeze()
                if self._was_enabled:
                    gc.enable()


collector = BatchCollector()
"""The process's one pacing (collection is process-wide)."""
