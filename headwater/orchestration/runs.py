"""Recorded runs: every kind of run — a batch run, a backfill, a materialization, a streaming
worker — is started, finished and failed the same way.

``with RecordedRun(registry, view, kind, details) as run:`` records the run as ``running``, and
on the way out ``success`` (with the rows and details given to :meth:`RecordedRun.finish`) or
``failed`` with the error, redacted, whatever the exception — or ``interrupted`` when the
process was asked to stop (Ctrl-C), never left ``running``. Each end is logged with the run id
and counted in the process's metrics (:mod:`headwater.observability.metrics`).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from headwater.errors import HeadwaterError, was_interrupted
from headwater.observability import get_logger, metrics, redact

if TYPE_CHECKING:
    from headwater.stores.registry import Registry

log = get_logger("runs")


def describe(exc: BaseException) -> str:
    """One line saying what went wrong, redacted (a headwater error's own message; otherwise
    the exception's type and text)."""
    if isinstance(exc, HeadwaterError):
        return redact(exc.message)
    if isinstance(exc, KeyboardInterrupt) or was_interrupted():
        return "interrupted (KeyboardInterrupt)"
    return redact(f"{type(exc).__name__}: {exc}")


class RecordedRun:
    """One run in the registry's run history (see the module docstring).

    Args:
        registry: where runs are recorded.
        view: the view the run is for.
        kind: ``run``, ``backfill``, ``materialize`` or ``stream``.
        details: recorded at the start (merged with those given at the end).
    """

    def __init__(
        self, registry: Registry, view: str, kind: str, details: dict[str, Any] | None = None
    ) -> None:
        self.registry = registry
        self.view = view
        self.kind = kind
        self.details = dict(details or {})
        self.run_id = ""
        self.seconds = 0.0
        self._started = 0.0
        self._ended = False
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None

    def __enter__(self) -> RecordedRun:
        self.run_id = self.registry.start_run(self.view, self.kind, self.details)
        self._started = time.perf_counter()
        self._beats = threading.Thread(
            target=self._beat,
            args=(self.registry.heartbeat_s,),
            name=f"heartbeat-{self.view}",
            daemon=True,
        )
        self._beats.start()
        return self

    def _beat(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.registry.heartbeat(self.run_id)
            except Exception as exc:  # the run goes on; a later beat may get through
                log.warning("heartbeat failed", extra={"fields": self._fields(error=str(exc))})

    def _stop_beating(self) -> None:
        self._stop.set()
        if self._beats is not None:
            self._beats.join()
            self._beats = None

    def finish(
        self, *, rows_in: int = 0, rows_out: int = 0, details: dict[str, Any] | None = None
    ) -> None:
        """Record the run as successful."""
        self._stop_beating()
        self.seconds = time.perf_counter() - self._started
        self.registry.finish_run(
            self.run_id, "success", rows_in=rows_in, rows_out=rows_out, details=details
        )
        self._ended = True
        self._count("success")
        log.info(
            f"{self.kind} finished",
            extra={"fields": self._fields(rows_in=rows_in, rows_out=rows_out)},
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_beating()
        if exc is None:
            if not self._ended:
                self.finish()
            return
        if self._ended:  # failed after it was recorded as finished: keep the record
            return
        self.seconds = time.perf_counter() - self._started
        message = describe(exc)
        status = (
            "interrupted" if isinstance(exc, KeyboardInterrupt) or was_interrupted() else "failed"
        )
        try:
            self.registry.finish_run(self.run_id, status, error=message)
        except Exception as failure:  # never hide the run's own error behind this one
            log.error(
                "could not record the failed run",
                extra={"fields": self._fields(error=describe(failure))},
            )
        self._ended = True
        self._count(status)
        log.info(f"{self.kind} {status}", extra={"fields": self._fields(error=message)})

    def _count(self, status: str) -> None:
        metrics.RUNS.labels(self.view, self.kind, status).inc()
        metrics.RUN_SECONDS.labels(self.view, self.kind).observe(self.seconds)

    def _fields(self, **more: Any) -> dict[str, Any]:
        return {"view": self.view, "run_id": self.run_id, "kind": self.kind} | more
