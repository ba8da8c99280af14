"""``--entity key=value[,key=value]`` of ``headwater get``: parsed to entity rows of text.

Values stay text here: the SDK converts each to its key's declared type by the rule every read
path shares (``headwater.engines.keys``), so ``user_id=abc`` is refused naming the type instead
of being looked up, and ``code=007`` stays ``"007"`` for a text key.
"""

from __future__ import annotations

from typing import Any

from headwater.errors import DefinitionError


def parse_entity(spec: str) -> dict[str, Any]:
    """One entity row from one ``--entity`` value.

    Raises:
        DefinitionError: not ``key=value`` pairs, or a key given twice.
    """
    row: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DefinitionError(
                f"--entity {spec!r} is not of the form key=value[,key=value]",
                fix="e.g. --entity user_id=1",
            )
        if key in row:
            raise DefinitionError(
                f"--entity {spec!r} gives key {key!r} twice",
                fix="give each key once per --entity; repeat --entity for more entities",
            )
        row[key] = value.strip()
    return row
