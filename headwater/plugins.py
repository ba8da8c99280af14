"""Lazy registration of implementations: a dict ``name -> "module:Class"``, then entry points."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from headwater.errors import ConfigError, MissingDependency

# Optional drivers and the extra that installs them.
_EXTRAS = {
    "redis": "redis",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "confluent_kafka": "kafka",
    "boto3": "s3",
    "pyspark": "spark",
}


def load_plugin(group: str, builtin: dict[str, str], name: str) -> Any:
    """Return the class registered as ``name``: built-ins first, then the entry-point group."""
    target = builtin.get(name)
    if target is None:
        for ep in entry_points(group=group):
            if ep.name == name:
                return ep.load()
        known = ", ".join(sorted(builtin))
        raise ConfigError(
            f"no implementation named {name!r} in {group}",
            fix=f"use one of: {known}, or install a plugin that registers it",
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in _EXTRAS:
            raise MissingDependency(missing, _EXTRAS[missing]) from exc
        raise
    return getattr(module, attr)
