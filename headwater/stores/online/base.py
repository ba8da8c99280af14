"""The online store protocol: the latest row per entity of each feature view.

Rule (same in every implementation): for each entity, the stored row is the one with the greatest
``event_timestamp``; on equal timestamps the greater ``created_timestamp`` wins, and an equal or
missing created timestamp replaces (so a same-timestamp correction replaces the stored value).
Reads return the stored values with their event timestamp; the caller applies ``ttl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.config.models import OnlineStoreConfig
    from headwater.definitions import FeatureView


@dataclass(frozen=True)
class OnlineRow:
    """One entity's stored row: features by name plus timestamps in epoch milliseconds."""

    values: dict[str, Any]
    event_ts_ms: int
    created_ts_ms: int | None


class OnlineStore(Protocol):
    """What every online store implements (constructed as ``Store(store_config, project)``)."""

    config_model: ClassVar[type[OnlineStoreConfig]]
    """The model of its ``online_store`` section (see :mod:`headwater.plugins`)."""
    SUPPORTS_TTL_EXPIRY: ClassVar[bool]

    def write(self, view: FeatureView, rows: pa.Table) -> int:
        """Upsert ``rows`` (join keys, ``event_timestamp``, optional ``created_timestamp``,
        feature columns) by the latest-row rule; return how many entities changed."""
        ...

    def read(self, view: FeatureView, entity_keys: list[tuple[Any, ...]]) -> list[OnlineRow | None]:
        """Rows for each key tuple (ordered as ``view.join_keys``); ``None`` when absent."""
        ...

    def delete_view(self, view_name: str) -> None:
        """Drop everything stored for a view."""
        ...

    def close(self) -> None: ...
