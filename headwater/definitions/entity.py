"""Entities: the named join keys features are grouped by."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headwater.definitions.naming import check_name
from headwater.errors import DefinitionError


@dataclass(frozen=True, kw_only=True)
class Entity:
    """A named join key (one or more columns), e.g. ``Entity("user", join_keys=["user_id"])``.

    Args:
        name: unique name of the entity.
        join_keys: the columns that identify one instance of the entity (a lone column name
            is accepted).
        description: free text shown in ``headwater status`` and the dashboard.
    """

    name: str = field(kw_only=False)
    join_keys: list[str] = field(default_factory=list)
    description: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, "entity")
        if isinstance(self.join_keys, str):
            object.__setattr__(self, "join_keys", [self.join_keys])
        if not self.join_keys:
            raise DefinitionError(
                f"entity {self.name!r} has no join keys",
                fix=f'Entity("{self.name}", join_keys=["{self.name}_id"])',
            )
        if len(set(self.join_keys)) != len(self.join_keys):
            raise DefinitionError(
                f"entity {self.name!r} repeats a join key: {self.join_keys}",
                fix="list each key column once",
            )
        object.__setattr__(self, "join_keys", list(self.join_keys))

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "entity",
            "name": self.name,
            "join_keys": self.join_keys,
            "description": self.description,
        }

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.join_keys)))
