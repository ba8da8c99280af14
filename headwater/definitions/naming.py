"""Rules for the names of entities, sources, views and features."""

from __future__ import annotations

import re

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
