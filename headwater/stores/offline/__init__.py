"""Offline stores: Delta Lake (default) and Parquet, registered in :mod:`headwater.plugins`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.plugins import load_plugin

if TYPE_CHECKING:
    from headwater.config import ProjectConfig
    from headwater.stores.offline.base import OfflineStore


def open_offline_store(config: ProjectConfig) -> OfflineStore:
    """Instantiate the offline store named by ``config.offline_store.type``."""
    cls: Any = load_plugin("headwater.offline_stores", config.offline_store.type)
    store: OfflineStore = cls(config.offline_store, config)
    return store
