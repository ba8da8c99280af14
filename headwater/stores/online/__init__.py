"""Online stores: SQLite (default) and Redis, registered in :mod:`headwater.plugins`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.plugins import load_plugin

if TYPE_CHECKING:
    from headwater.config import ProjectConfig
    from headwater.stores.online.base import OnlineStore


def open_online_store(config: ProjectConfig) -> OnlineStore:
    """Instantiate the online store named by ``config.online_store.type``."""
    cls: Any = load_plugin("headwater.online_stores", config.online_store.type)
    store: OnlineStore = cls(config.online_store, config)
    return store
