"""The server's one door to the :class:`~headwater.feature_store.FeatureStore`.

FastAPI runs plain ``def`` endpoints on a thread pool, but ``FeatureStore`` is not guaranteed to
be thread-safe: its stores are built lazily (``cached_property``), it opens DuckDB connections
and its online and registry stores hold connections of their own. Every call into the store
therefore goes through :class:`ServerState`, which holds one lock for the duration of the call.
Requests are served one at a time while they touch the store; simple and correct beats fast
here, and a deployment that needs more throughput runs several server processes.

``status()`` scans the offline store, so its result is cached for a few seconds: Prometheus
scrapes and dashboard refreshes within that time share one scan.

A server outlives ``apply``: at most every ``reload_interval`` seconds a request asks the
registry whether anything was applied since (:meth:`Registry.applied_marker`, one small query)
and, if so, reloads the definitions, so a view applied while the server runs is served without a
restart. Definitions that fail to load (a module saved half-edited) leave the previous ones in
place, with a warning in the log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.errors import HeadwaterError
from headwater.observability import get_logger

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.definitions import FeatureView
    from headwater.feature_store import FeatureStore, ViewStatus
    from headwater.stores.registry import RunRecord

_log = get_logger("headwater.server")

DEFAULT_STATUS_TTL = 5.0
"""Seconds a ``FeatureStore.status()`` result is reused before the store is scanned again."""
DEFAULT_RELOAD_INTERVAL = 2.0
"""Seconds between two checks of the registry for definitions applied since they were loaded."""


@dataclass(frozen=True)
class OnlineResult:
    """The table of one online lookup and how many values it served per view."""

    table: pa.Table
    served: dict[str, int]


class ServerState:
    """Serialised access to a feature store, with a short-lived cache of its status.

    Args:
        store: the feature store to serve.
        status_ttl: seconds a status result is reused.
        reload_interval: seconds between checks for newly applied definitions (0: every
            request).
        clock: a monotonic clock (replaceable in tests).
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        status_ttl: float = DEFAULT_STATUS_TTL,
        reload_interval: float = DEFAULT_RELOAD_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.status_ttl = status_ttl
        self.reload_interval = reload_interval
        self._clock = clock
        # One lock for every call into the store (see the module docstring).
        self._lock = threading.Lock()
        self._status: tuple[float, list[ViewStatus]] | None = None
        self._applied = store.registry.applied_marker()
        self._checked = clock()

    def _refresh(self) -> None:
        """Reload the definitions when something was applied since they were loaded (called
        with the lock held)."""
        now = self._clock()
        if now - self._checked < self.reload_interval:
            return
        self._checked = now
        applied = self.store.registry.applied_marker()
        if applied == self._applied:
            return
        previous = self.store.__dict__.pop("definitions", None)  # a cached_property
        try:
            _ = self.store.definitions
        except HeadwaterError as exc:
            _log.warning("kept the definitions loaded before: the new ones fail: %s", exc)
            if previous is not None:
                self.store.__dict__["definitions"] = previous
            return
        self._applied = applied
        self._status = None
        _log.info("reloaded the definitions: something was applied")

    @property
    def project(self) -> str:
        """The project's name (plain configuration data, read without the lock)."""
        return self.store.config.project

    def views(self) -> dict[str, FeatureView]:
        """The project's feature views by name."""
        with self._lock:
            self._refresh()
            return dict(self.store.definitions.views)

    def status(self) -> list[ViewStatus]:
        """``FeatureStore.status()``, reused for ``status_ttl`` seconds."""
        with self._lock:
            self._refresh()
            now = self._clock()
            if self._status is not None and now - self._status[0] < self.status_ttl:
                return self._status[1]
            result = self.store.status()
            self._status = (self._clock(), result)
            return result

    def schema_types(self, view: str) -> dict[str, str]:
        """Column name -> Arrow type name of an applied view (empty when not applied)."""
        with self._lock:
            schema = self.store.registry.schema(view)
        if schema is None:
            return {}
        return {field.name: str(field.type) for field in schema}

    def runs(self, view: str | None, kind: str | None, limit: int) -> list[RunRecord]:
        """Recent runs, newest first."""
        with self._lock:
            self.store.registry.abort_dead_runs()  # dead processes' runs show as aborted
            return self.store.registry.runs(view=view, kind=kind, limit=limit)

    def online(
        self,
        features: list[str],
        entity_rows: list[dict[str, Any]],
        *,
        full_feature_names: bool,
    ) -> OnlineResult:
        """Look features up in the online store.

        Raises:
            HeadwaterError: an unknown view or feature, a missing join key, an unapplied view.
        """
        from headwater.engines.retrieval import parse_refs

        with self._lock:
            self._refresh()
            response = self.store.get_online_features(
                features, entity_rows, full_feature_names=full_feature_names
            )
            grouped = parse_refs(features, self.store.definitions.views)
        rows = len(entity_rows)
        served = {view: len(names) * rows for view, names in grouped.items()}
        return OnlineResult(response.to_arrow(), served)
