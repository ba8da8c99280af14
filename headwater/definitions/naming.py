"""Rules for the names of entities, sources, views and features."""

from __future__ import annotations

import re
from typing import Any

from headwater.errors import DefinitionError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it is a valid identifier-like name, else raise naming ``what``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefinitionError(
            f"{what} name {name!r} is not valid",
            fix="use letters, digits and underscores, starting with a letter (e.g. 'user_orders')",
        )
    if "__" in name:
        raise DefinitionError(
            f"{what} name {name!r} contains '__', which headwater reserves for full feature names"
            " (view__feature)",
            fix="use a single underscore",
        )
    return name


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (DuckDB/PostgreSQL rules)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """Render a Python value as a DuckDB literal (strings quoted, quotes doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{sql_literal(str(k))}: {sql_literal(v)}" for k, v in value.items())
            + "}"
        )
    return "'" + str(value).replace("'", "''") + "'"
