"""Move the latest offline rows per entity into the online store.

Only rows whose ``event_timestamp`` has passed are served: a window that ends in the future
(today's daily window, still filling) is not a value a training set could see yet, so serving
it would skew online from offline. Incremental by default: the mark holds the greatest ``_seq``
(the write that last changed a row) read and the time ``until`` which rows were eligible; a run
reads rows changed since (``_seq`` above the mark) plus older rows whose time has come since
``until``. The online store's latest-row rule makes replays harmless. ``full_refresh`` clears
the view's online data and reloads it from all history.

Rows are read from the view's active table version (:mod:`headwater.orchestration.versions`).
The mark records that version: after a switch to a new one, the next run clears the view's
online data and reloads it from the new version, so no key of the old version stays online.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from headwater.engines.compile import ms_to_ts_sql
from headwater.orchestration.runs import RecordedRun
from headwater.sql import quote_ident as q
from headwater.stores.offline.base import SEQ

if TYPE_CHECKING:
    from headwater.definitions import FeatureView
    from headwater.engines.base import BatchEngine
    from headwater.stores.offline.base import OfflineStore
    from headwater.stores.online.base import OnlineStore
    from headwater.stores.registry import Registry


@dataclass
class MaterializeResult:
    """The outcome of materializing one view."""

    view: str
    run_id: str
    entities: int
    from_seq: int
    to_seq: int
    seconds: float


def mark_checkpoint(view: str) -> str:
    return f"materialized:{view}"


def materialize_view(
    view: FeatureView,
    *,
    registry: Registry,
    offline: OfflineStore,
    online: OnlineStore,
    engine: BatchEngine,
    full_refresh: bool = False,
    batch_rows: int = 50_000,
    now_ms: int | None = None,
) -> MaterializeResult:
    """Materialize one view; the mark is committed after the online writes."""
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    with RecordedRun(registry, view.name, "materialize", {"full_refresh": full_refresh}) as run:
        active = registry.serving_version(view.name)
        version = 1 if active is None else active.version
        stored = None if full_refresh else registry.get_checkpoint(mark_checkpoint(view.name))
        if stored is not None and stored.get("version", 1) != version:
            full_refresh, stored = True, None  # a new table version: reload from it alone
        mark, until_ms = (-1, None) if stored is None else (stored["seq"], stored["until_ms"])
        if full_refresh:
            online.delete_view(view.name)
        dataset = offline.dataset(view.name if active is None else active.table)
        entities, top = 0, mark
        if dataset is not None:
            con = engine.connect()
            try:
                con.register("__hw_hist", dataset)
                row = con.sql(f"SELECT max({SEQ}) FROM __hw_hist").fetchall()[0]
                top = int(row[0]) if row and row[0] is not None else mark
                keys = ", ".join(q(k) for k in view.join_keys)
                order = "event_timestamp DESC"
                if view.has_created_timestamp:
                    order += ", created_timestamp DESC NULLS LAST"
                due = f"event_timestamp <= {ms_to_ts_sql(str(now_ms))}"
                changed = f"{SEQ} > {mark} AND {SEQ} <= {top}"
                if until_ms is not None:
                    became_due = f"event_timestamp > {ms_to_ts_sql(str(until_ms))}"
                    changed = f"({changed}) OR ({SEQ} <= {mark} AND {became_due})"
                reader = con.sql(
                    f"SELECT * EXCLUDE (event_date, {SEQ}) FROM __hw_hist "
                    f"WHERE {due} AND ({changed}) "
                    f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1"
                ).to_arrow_reader(batch_rows)
                import pyarrow as pa

                for batch in reader:
                    entities += online.write(view, pa.Table.from_batches([batch]))
            finally:
                con.close()
        registry.set_checkpoint(
            mark_checkpoint(view.name), {"seq": top, "until_ms": now_ms, "version": version}
        )
        run.finish(rows_in=entities, rows_out=entities, details={"from_seq": mark, "to_seq": top})
    return MaterializeResult(view.name, run.run_id, entities, mark, top, run.seconds)
