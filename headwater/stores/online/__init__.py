"""Online stores: SQLite (default) and Redis. Registered by name, imported lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.plugins import load_plugin

if TYPE_CHECKING:
    from headwater.config import ProjectConfig
    from headwater.stores.online.base import OnlineStore

ONLINE_STORES: dict[str, str] = {
    "sqlite": "headwater.stores.online.sqlite:SqliteOnlineStore",
    "redis": "headwater.stores.online.redis:RedisOnlineStore",
}


def open_online_store(config: ProjectConfig) -> OnlineStore:
    """Instantiate the online store named by ``config.online_store.type``."""
    cls: Any = load_plugin("headwater.online_stores", ONLINE_STORES, config.online_store.type)
    store: OnlineStore = cls(config.online_store, config)
    return store
