"""A micro-batch's rows to the online and offline stores, while the next batch is gathered.

Each store gets one writing thread (its writes stay in order); the worker waits for both before
it commits the batch's checkpoint — and before a rebalance, a stop or declaring the topic caught
up — so a checkpoint always follows the writes of what it covers. A write that fails fails the
worker with nothing of its batch committed (it is read again on restart). Writes are idempotent,
so an offline merge that lost a race with another worker's commit to the same table is simply
tried again, with backoff.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from headwater.errors import DefinitionError
from headwater.observability import get_logger

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.definitions import FeatureView
    from headwater.stores.offline.base import OfflineStore
    from headwater.stores.online.base import OnlineStore
    from headwater.stores.registry import Registry

log = get_logger("stream")

RETRIES = 8
"""Offline merges tried again after a conflict with another writer, at most."""


class StoreWrites:
    """The pending store writes of one worker's last micro-batch.

    Args:
        view: the view written.
        offline: the offline store (written when ``view.offline``).
        online: the online store, or ``None``.
        registry: gives each offline write its sequence number.
    """

    def __init__(
        self,
        view: FeatureView,
        offline: OfflineStore,
        online: OnlineStore | None,
        registry: Registry,
    ) -> None:
        self.view = view
        self.offline = offline
        self.online = online
        self.registry = registry
        # Offline rows go to the view's active table version.
        self._table_view = view.stored_as(registry.serving_table(view.name))
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pending: list[Future[Any]] = []

    def submit(self, rows: pa.Table) -> None:
        """Start writing ``rows`` to each store, in its thread."""
        if self.online is not None:
            self._pending.append(self._thread("online").submit(self.online.write, self.view, rows))
        if self.view.offline:
            self._pending.append(self._thread("offline").submit(self._write_offline, rows))

    def wait(self) -> None:
        """Wait until every pending write finished (each one, even after another failed);
        raise the first failure."""
        pending, self._pending = self._pending, []
        failure: BaseException | None = None
        for write in pending:
            try:
                write.result()
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def close(self) -> None:
        """Stop the threads once their writes ended."""
        for pool in self._pools.values():
            pool.shutdown()
        self._pools.clear()

    def _thread(self, store: str) -> ThreadPoolExecutor:
        if store not in self._pools:
            self._pools[store] = ThreadPoolExecutor(
                1, thread_name_prefix=f"{store}-{self.view.name}"
            )
        return self._pools[store]

    def _write_offline(self, rows: pa.Table) -> None:
        """Merge ``rows`` into the offline table, retrying when another worker's commit to the
        same table got in first (the write is idempotent, so trying again is safe)."""
        attempt = 0
        while True:
            try:
                self.offline.write(self._table_view, rows.to_reader(), seq=self.registry.next_seq())
                return
            except DefinitionError:
                raise
            except Exception as exc:
                attempt += 1
                if attempt > RETRIES:
                    raise
                delay = min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.5)
                log.warning(
                    "offline write conflicted with another writer; retrying",
                    extra={
                        "fields": {"view": self.view.name, "attempt": attempt, "error": str(exc)}
                    },
                )
                time.sleep(delay)
