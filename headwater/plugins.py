"""The registry of implementations: what each ``type:`` or source ``kind`` names.

One plain dict per group, ``name -> "module:Class"``, imported on first use; a name not found
there is looked up in the entry-point group of the same name, where third-party packages
register theirs::

    [project.entry-points."headwater.online_stores"]
    memcached = "headwater_memcached:MemcachedOnlineStore"

Built-ins come first: a plugin cannot replace one. Stores, registry backends and engines
declare their ``headwater.yaml`` model as a ``config_model`` class attribute; a connection type
is registered as its model itself. An implementation that needs optional drivers names them in
a ``REQUIRES`` class attribute (top-level module names, with ``EXTRA`` the extra that installs
them): loading it checks they are installed, so a missing one is a one-line error naming the
extra (``pip install 'headwater[postgres]'``) before any work starts.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING, Any

from headwater.errors import ConfigError, missing_extra, require_modules

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

CONNECTORS: dict[str, str] = {
    "file": "headwater.connectors.files:FileConnector",
    "kafka": "headwater.connectors.kafka.source:KafkaConnector",
    "postgres": "headwater.connectors.postgres.reader:PostgresConnector",
    "redshift": "headwater.connectors.redshift.source:RedshiftConnector",
    "sqlite": "headwater.connectors.sqlite:SqliteConnector",
}
"""Source connectors, by source kind (``Source.kind``)."""

CONNECTIONS: dict[str, str] = {
    "postgres": "headwater.connectors.postgres.config:PostgresConnection",
    "kafka": "headwater.connectors.kafka.config:KafkaConnection",
    "redshift": "headwater.connectors.redshift.config:RedshiftConnection",
}
"""Connection models (``connections.<name>.type``)."""

OFFLINE_STORES: dict[str, str] = {
    "delta": "headwater.stores.offline.delta:DeltaOfflineStore",
    "parquet": "headwater.stores.offline.parquet:ParquetOfflineStore",
}
"""Offline stores (``offline_store.type``)."""

ONLINE_STORES: dict[str, str] = {
    "sqlite": "headwater.stores.online.sqlite:SqliteOnlineStore",
    "redis": "headwater.stores.online.redis:RedisOnlineStore",
}
"""Online stores (``online_store.type``)."""

REGISTRIES: dict[str, str] = {
    "sqlite": "headwater.stores.registry._sql:SqliteDb",
    "postgres": "headwater.stores.registry._sql:PostgresDb",
}
"""Registry backends (``registry.type``)."""

ENGINES: dict[str, str] = {
    "duckdb": "headwater.engines.duckdb:DuckDBEngine",
}
"""Batch engines (``engine.type``)."""

SINKS: dict[str, str] = {
    "postgres": "headwater.connectors.postgres.sink:PostgresSinkWriter",
    "redshift": "headwater.connectors.redshift.sink:RedshiftSinkWriter",
}
"""Warehouse sink writers, by sink kind (``Sink.kind``)."""

BUILTINS: dict[str, dict[str, str]] = {
    "headwater.connectors": CONNECTORS,
    "headwater.connections": CONNECTIONS,
    "headwater.offline_stores": OFFLINE_STORES,
    "headwater.online_stores": ONLINE_STORES,
    "headwater.registries": REGISTRIES,
    "headwater.engines": ENGINES,
    "headwater.sinks": SINKS,
}
"""Every group: its entry-point group name and its built-in table."""


def _installed(group: str) -> dict[str, EntryPoint]:
    """The entry points installed packages register in ``group`` (none is imported)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=group)}


def plugin_names(group: str) -> list[str]:
    """The names known in ``group``: built-ins in their order, then installed plugins' names
    (sorted), without importing any of them."""
    builtin = BUILTINS[group]
    return [*builtin, *sorted(name for name in _installed(group) if name not in builtin)]


def is_registered(group: str, name: str) -> bool:
    """Whether ``name`` is a built-in of ``group`` or registered there by an installed plugin."""
    return name in BUILTINS[group] or name in _installed(group)


def did_you_mean(group: str, name: str) -> str:
    """``", did you mean 'x'?"`` when ``name`` is close to a name known in ``group``."""
    close = difflib.get_close_matches(name, plugin_names(group), n=1)
    return f", did you mean {close[0]!r}?" if close else ""


def load_plugin(group: str, name: str, *, check_requires: bool = True) -> Any:
    """Return the class (or model) registered as ``name`` in ``group``.

    Built-ins are tried first, then the entry points of installed packages. With
    ``check_requires`` (to open it, not merely to read its configuration model), the optional
    modules a built-in lists in ``REQUIRES`` must be installed.

    Raises:
        ConfigError: no implementation has that name, or a plugin's module does not import.
        MissingDependency: a built-in needs an optional driver that is not installed.
    """
    target = BUILTINS[group].get(name)
    if target is not None:
        found_class = _import(target)
        if check_requires:
            require_modules(
                tuple(getattr(found_class, "REQUIRES", ())), getattr(found_class, "EXTRA", None)
            )
        return found_class
    found = _installed(group).get(name)
    if found is None:
        known = ", ".join(repr(n) for n in plugin_names(group))
        raise ConfigError(
            f"no implementation named {name!r} in {group}{did_you_mean(group, name)} "
            f"(known: {known})",
            fix=f"use one of the known names, or install a package that registers {name!r} "
            f"under the {group} entry points",
        )
    try:
        return found.load()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"the plugin {name!r} of {group} ({found.value}) cannot be loaded: "
            f"{type(exc).__name__}: {exc}",
            fix="reinstall the package that provides it, or install its missing dependencies",
        ) from exc


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = missing_extra(exc)
        if missing is not None:
            raise missing from exc
        raise
    return getattr(module, attr)
