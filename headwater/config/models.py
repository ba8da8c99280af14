"""The shape of ``headwater.yaml``: the project, and one section per pluggable part.

A pluggable section (each connection, the registry, the offline and online stores, the engine)
is typed here by a small base class holding its ``type``. The ``type:`` names an implementation
in :mod:`headwater.plugins` (a built-in, or one an installed package registers by entry point),
and the section is validated by that implementation's own model: ``config_model`` of a store,
registry backend or engine; the registered model itself for a connection. Those models live
beside their implementations, derive from the base of their group, narrow ``type`` to a
``Literal``, forbid unknown keys and keep secrets as :class:`pydantic.SecretStr`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, field_validator
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from headwater.errors import ConfigError
from headwater.plugins import did_you_mean, is_registered, load_plugin, plugin_names


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginConfig(_Model):
    """Base of the configuration of a pluggable part."""

    group: ClassVar[str] = ""
    """The :mod:`headwater.plugins` group (and entry-point group) that ``type`` is looked up in."""
    type: str
    """Which implementation: a built-in name, or one an installed plugin registers."""


class ConnectionConfig(PluginConfig):
    """Base of the models of ``connections.<name>`` (``PostgresConnection``, ...)."""

    group: ClassVar[str] = "headwater.connections"


class RegistryConfig(PluginConfig):
    """Base of the models of ``registry`` (``SqliteRegistryConfig``, ...)."""

    group: ClassVar[str] = "headwater.registries"


class OfflineStoreConfig(PluginConfig):
    """Base of the models of ``offline_store`` (``DeltaOfflineStoreConfig``, ...)."""

    group: ClassVar[str] = "headwater.offline_stores"
    path: str = "data/offline"
    """Folder or URL of the history tables; the side tables of runs (landing tables of
    incremental aggregations, quarantined rows) are kept under it too."""


class OnlineStoreConfig(PluginConfig):
    """Base of the models of ``online_store`` (``SqliteOnlineStoreConfig``, ...)."""

    group: ClassVar[str] = "headwater.online_stores"


class EngineConfig(PluginConfig):
    """Base of the models of ``engine`` (``DuckDBEngineConfig``, ...).

    Its keys are the resources of this machine that headwater's local work may use: the
    engine's, and that of the readers and writers working beside it (the offline store's
    writer, partitioned reads).
    """

    group: ClassVar[str] = "headwater.engines"
    memory_limit: str | None = None
    """Memory the engine may use (e.g. ``"2GB"``, ``"512MiB"``; at least 64 MiB); larger work
    spills to ``temp_directory``. The offline store's writer stays under it too."""
    threads: int | None = Field(default=None, ge=1)
    """Threads, at least 1 (default: the CPUs this process may run on)."""

    @field_validator("memory_limit")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        if value is None:
            return value
        found = _MEMORY_SIZE.fullmatch(value)
        if found is None:
            raise PydanticCustomError(
                "memory_size",
                "{value} is not a memory size: write a number and a unit, e.g. 2GB or 512MiB "
                "(units: KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
                {"value": repr(value)},
            )
        size = float(found.group(1)) * _MEMORY_UNITS[found.group(2).lower()]
        if size < _MIN_MEMORY:
            raise PydanticCustomError(
                "memory_size", "{value} is too small: at least 64MiB", {"value": repr(value)}
            )
        return value

    temp_directory: str = ".headwater/tmp"
    """Local folder for spilled and spooled data (the engine's, and partitioned reads')."""


_MEMORY_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|[KMGT])\s*", re.IGNORECASE)
_MEMORY_UNITS = {
    f"{prefix.lower()}{suffix}": float(base**power)
    for power, prefix in enumerate("KMGT", start=1)
    for suffix, base in (("b", 1000), ("", 1000), ("ib", 1024))
}
_MIN_MEMORY = 64 * 1024**2


def plugin_model(group: str, name: str) -> type[PluginConfig]:
    """The configuration model of the implementation registered as ``name`` in ``group``.

    Raises:
        ConfigError: ``name`` is not registered, or its implementation declares no model
            derived from the group's base class.
    """
    found = load_plugin(group, name, check_requires=False)  # reading a model needs no driver
    is_model = isinstance(found, type) and issubclass(found, BaseModel)
    model = found if is_model else getattr(found, "config_model", None)
    base = _BASES[group]
    if not (isinstance(model, type) and issubclass(model, base)):
        raise ConfigError(
            f"the {name!r} implementation of {group} ({found!r}) declares no configuration "
            f"model derived from headwater.config.models.{base.__name__}",
            fix=f"give it a class attribute `config_model` naming a subclass of {base.__name__}"
            if not is_model
            else f"derive the model from {base.__name__}",
        )
    return model


def _type_listing(group: str) -> str:
    """The valid ``type:`` values of ``group``, quoted, for messages."""
    return ", ".join(repr(name) for name in plugin_names(group))


def _validate_section(base: type[PluginConfig], value: Any) -> PluginConfig:
    """``value`` as the model of the plugin its ``type:`` names (model instances pass)."""
    if isinstance(value, base):
        return value
    group = base.group
    if not isinstance(value, Mapping):
        raise PydanticCustomError(
            "section_not_mapping",
            "expected a mapping with a `type:` key (one of {valid}), got {got}",
            {"valid": _type_listing(group), "got": type(value).__name__},
        )
    name = value.get("type")
    if name is None:
        raise PydanticCustomError(
            "type_missing", "needs a `type:` key (one of {valid})", {"valid": _type_listing(group)}
        )
    if not isinstance(name, str) or not is_registered(group, name):
        hint = did_you_mean(group, name) if isinstance(name, str) else ""
        raise PydanticCustomError(
            "type_unknown",
            "unknown type {type}{hint} (valid: {valid})",
            {"type": repr(name), "hint": hint, "valid": _type_listing(group)},
        )
    return plugin_model(group, name).model_validate(dict(value))


class _Section:
    """Validates a section with the model of the plugin its ``type:`` names."""

    def __get_pydantic_core_schema__(
        self, source: type[PluginConfig], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            functools.partial(_validate_section, source)
        )


def _default(base: type[PluginConfig], name: str) -> Callable[[], Any]:
    return lambda: plugin_model(base.group, name).model_validate({"type": name})


_BASES: dict[str, type[PluginConfig]] = {
    base.group: base
    for base in (
        ConnectionConfig,
        RegistryConfig,
        OfflineStoreConfig,
        OnlineStoreConfig,
        EngineConfig,
    )
}


class RunsConfig(_Model):
    """``runs``: how batch runs (``headwater run``, ``backfill``) judge and guard themselves."""

    max_skipped_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Largest share of a run's rows that may be set aside (quarantined, or without a join key
    or event time) before the run fails (the default 1.0: never). A run none of whose rows has
    a join key and an event time always fails."""
    lease_s: float = Field(default=120.0, gt=0.0)
    """Seconds without a heartbeat after which a running run (and its hold on its view) is
    taken for dead and marked ``aborted``; a run on this host whose process is gone is marked
    at once."""


class ProjectConfig(_Model):
    """The whole of ``headwater.yaml``."""

    project: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    """Project name; prefixes keys in shared stores."""
    registry: Annotated[RegistryConfig, _Section()] = Field(
        default_factory=_default(RegistryConfig, "sqlite")
    )
    offline_store: Annotated[OfflineStoreConfig, _Section()] = Field(
        default_factory=_default(OfflineStoreConfig, "delta")
    )
    online_store: Annotated[OnlineStoreConfig, _Section()] = Field(
        default_factory=_default(OnlineStoreConfig, "sqlite")
    )
    engine: Annotated[EngineConfig, _Section()] = Field(
        default_factory=_default(EngineConfig, "duckdb")
    )
    connections: dict[str, Annotated[ConnectionConfig, _Section()]] = Field(default_factory=dict)
    runs: RunsConfig = Field(default_factory=RunsConfig)
    """How batch runs judge the rows they set aside, and how long a silent run holds its view."""
    root: Path = Field(default=Path("."), exclude=True)
    """The project folder (set by the loader, not read from YAML)."""

    def resolve(self, path: str) -> str:
        """An absolute path for a project-relative path; URLs (``s3://``) pass through."""
        if "://" in path:
            return path
        candidate = Path(path)
        return str(candidate if candidate.is_absolute() else (self.root / candidate).resolve())

    def connection(self, name: str, kind: str) -> Any:
        conn = self.connections.get(name)
        if conn is None:
            known = ", ".join(sorted(self.connections)) or "none"
            raise ConfigError(
                f"connection {name!r} is not defined in headwater.yaml (defined: {known})",
                fix=f"add connections: {{{name}: {{type: {kind}, ...}}}}",
            )
        if conn.type != kind:
            raise ConfigError(
                f"connection {name!r} is of type {conn.type!r}, but a {kind} source uses it",
                fix=f"point the source at a connection of type {kind}",
            )
        return conn
