"""Streaming workers supervised: one per view, each in a thread of its own with its own stores
and a recorded ``stream`` run; the first to fail stops the others.

The engine itself — gathering, folding, watermarks, checkpoints — is
:mod:`headwater.engines.streaming`; this module only builds, runs and records workers.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from headwater.engines.streaming.options import StreamOptions, StreamStats
from headwater.orchestration.runs import RecordedRun

if TYPE_CHECKING:
    from headwater.config import ProjectConfig
    from headwater.definitions import FeatureView

__all__ = ["StreamOptions", "StreamStats", "run_streams"]


def run_streams(
    project: ProjectConfig, views: list[FeatureView], options: StreamOptions
) -> list[StreamStats]:
    """Run one worker per view, each in its own thread with its own stores; return their totals.

    The first worker to fail stops the others and its error is raised.
    """
    results: dict[str, StreamStats] = {}
    errors: list[BaseException] = []

    def work(view: FeatureView) -> None:
        try:
            results[view.name] = run_worker(project, view, options)
        except BaseException as exc:
            errors.append(exc)
            options.stop.set()

    if len(views) == 1:
        work(views[0])
    else:
        threads = [
            threading.Thread(target=work, args=(v,), name=f"stream-{v.name}", daemon=True)
            for v in views
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    if errors:
        raise errors[0]
    return [results[v.name] for v in views if v.name in results]


def run_worker(project: ProjectConfig, view: FeatureView, options: StreamOptions) -> StreamStats:
    """Build ``view``'s worker with stores of its own, run it as a recorded ``stream`` run.

    The fitted statistics of its cleaning steps are read (or fitted, reading the source's
    training range in batch) here, before the worker starts."""
    from headwater.engines import open_engine
    from headwater.engines.streaming.worker import StreamWorker
    from headwater.orchestration.fitting import fitted_statistics
    from headwater.stores.offline import open_offline_store
    from headwater.stores.online import open_online_store
    from headwater.stores.registry import Registry
    from headwater.transforms.runtime import check_streaming

    registry = online = None
    try:
        registry = Registry.open(project)
        engine = open_engine(project)
        check_streaming(view)  # before any read for fitting
        con = engine.connect()
        try:
            statistics = fitted_statistics(con, view, project=project, registry=registry)
        finally:
            con.close()
        online = open_online_store(project) if view.online else None
        worker = StreamWorker(
            project,
            view,
            registry,
            open_offline_store(project),
            online,
            engine.connect,
            options,
            statistics,
        )
        topic = getattr(view.source, "topic", None)
        with RecordedRun(registry, view.name, "stream", {"topic": topic}) as run:
            stats = worker.run(run.run_id)
            run.finish(rows_in=stats.events, rows_out=stats.rows_out, details=stats.details())
        return stats
    finally:
        if online is not None:
            online.close()
        if registry is not None:
            registry.close()
