"""Request and response bodies of the HTTP API, and their conversion to JSON-safe values.

JSON has no dates, decimals, bytes or NaN, so values leave the server as:
datetimes, dates and times as ISO 8601 strings; decimals as strings (no precision is lost);
bytes as base64 strings; durations as seconds; NaN and infinities as ``null``.
"""

from __future__ import annotations

import base64
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from headwater.definitions.durations import format_millis
from headwater.errors import DefinitionError

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.definitions import FeatureView
    from headwater.feature_store import ViewStatus
    from headwater.stores.registry import RunRecord


class OnlineRequest(BaseModel):
    """Body of ``POST /features/online``.

    Entities are given either column-wise, as Feast does (``"entities": {"user_id": [1, 2]}``),
    or row-wise (``"entity_rows": [{"user_id": 1}, {"user_id": 2}]``).
    """

    model_config = ConfigDict(extra="forbid")

    features: list[str] = Field(min_length=1)
    """Feature references ``"view:feature"`` (``"view:*"`` for every feature of a view)."""
    entities: dict[str, list[Any]] | None = None
    """Join key -> one value per entity."""
    entity_rows: list[dict[str, Any]] | None = None
    """One mapping of join keys per entity."""
    full_feature_names: bool = False
    """Name result columns ``view__feature`` instead of ``feature``."""

    def rows(self) -> list[dict[str, Any]]:
        """The entities as rows, whichever way they were given.

        Raises:
            DefinitionError: both or neither forms given, columns of unequal length, no entity.
        """
        if self.entities is not None and self.entity_rows is not None:
            raise DefinitionError(
                "the request has both 'entities' and 'entity_rows'",
                fix="send one of them",
            )
        if self.entity_rows is not None:
            rows = self.entity_rows
        elif self.entities is not None:
            lengths = {key: len(values) for key, values in self.entities.items()}
            if len(set(lengths.values())) > 1:
                raise DefinitionError(
                    f"the entity columns have different lengths: {lengths}",
                    fix="give every join key one value per entity",
                )
            count = next(iter(lengths.values()), 0)
            rows = [{k: v[i] for k, v in self.entities.items()} for i in range(count)]
        else:
            raise DefinitionError(
                "the request names no entities",
                fix='add "entities": {"user_id": [1, 2]} or "entity_rows": [{"user_id": 1}]',
            )
        if not rows:
            raise DefinitionError(
                "the request has no entity rows", fix="send at least one entity to look up"
            )
        return rows


def json_safe(value: Any) -> Any:
    """``value`` with every nested item converted to a JSON-safe equivalent."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


def online_payload(table: pa.Table) -> dict[str, Any]:
    """Response of ``POST /features/online``: column names (join keys first, as Feast lists
    them) and one list of values per column, in the order of the entity rows."""
    return {
        "metadata": {"feature_names": list(table.column_names)},
        "results": {name: json_safe(table[name].to_pylist()) for name in table.column_names},
    }


def run_payload(run: RunRecord) -> dict[str, Any]:
    """One run of the run history as JSON."""
    return {
        "run_id": run.run_id,
        "view": run.view,
        "kind": run.kind,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "ended_at": None if run.ended_at is None else run.ended_at.isoformat(),
        "duration_seconds": run.seconds,
        "rows_in": run.rows_in,
        "rows_out": run.rows_out,
        "error": run.error,
        "details": json_safe(run.details),
    }


def describe_window(view: FeatureView) -> str:
    """``"tumbling 1d"``, ``"hopping 1h every 5m"``, ``"lifetime"`` or ``""`` (projections)."""
    if view.kind == "projection":
        return ""
    window = view.window_ms
    if window is None:
        return "lifetime"
    size, hop = window
    if size == hop:
        return f"tumbling {format_millis(size)}"
    return f"hopping {format_millis(size)} every {format_millis(hop)}"


def view_payload(
    status: ViewStatus, view: FeatureView | None, types: dict[str, str], now: datetime
) -> dict[str, Any]:
    """One feature view with its freshness and last run, as the dashboard shows it.

    ``stale`` is true when the newest event is older than the view's ttl: online reads of
    such a view return nulls.
    """
    latest = status.latest_event if isinstance(status.latest_event, datetime) else None
    age = None if latest is None else (now - latest).total_seconds()
    ttl_ms = None if view is None else view.ttl_ms
    features = [] if view is None else view.feature_names
    keys = [] if view is None else view.join_keys
    return {
        "name": status.name,
        "shape": status.shape,
        "window": "" if view is None else describe_window(view),
        "entity": status.entity,
        "join_keys": [{"name": k, "type": types.get(k)} for k in keys],
        "source": status.source,
        "source_kind": None if view is None else view.source.kind,
        "features": [{"name": f, "type": types.get(f)} for f in features],
        "ttl_seconds": None if ttl_ms is None else ttl_ms / 1000,
        "online": None if view is None else view.online,
        "description": "" if view is None else view.description,
        "offline_rows": status.offline_rows,
        "newest_event": None if latest is None else latest.isoformat(),
        "newest_event_age_seconds": age,
        "stale": None if age is None or ttl_ms is None else age * 1000 > ttl_ms,
        "last_run": None if status.last_run is None else run_payload(status.last_run),
        "materialized_seq": status.materialized_seq,
    }
