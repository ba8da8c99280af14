"""Aggregations computed per entity over event-time windows (or the entity's whole lifetime).

Each aggregation ignores NULL inputs, like SQL. ``Last`` keeps the value of the event with the
greatest ``(event time, created time, value)`` so that ties resolve the same way in every engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from headwater.definitions.naming import check_name


@dataclass(frozen=True, init=False)
class Aggregation:
    """Base class: one output column computed from one input column."""

    function: ClassVar[str] = ""
    needs_column: ClassVar[bool] = True
    column: str | None
    name: str

    def __init__(self, column: str | None = None, *, name: str | None = None) -> None:
        from headwater.errors import DefinitionError

        if self.needs_column and not column:
            raise DefinitionError(
                f"{type(self).__name__}() needs the column to aggregate",
                fix=f'{type(self).__name__}("amount", name="amount_{self.function}")',
            )
        default = f"{column}_{self.function}" if column else self.function
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "name", check_name(name or default, "feature"))

    def __repr__(self) -> str:
        arg = f"{self.column!r}, " if self.column else ""
        return f"{type(self).__name__}({arg}name={self.name!r})"

    def to_spec(self) -> dict[str, Any]:
        return {"function": self.function, "column": self.column, "name": self.name}


class Sum(Aggregation):
    """Sum of a numeric column."""

    function = "sum"


class Count(Aggregation):
    """Number of events (``Count()``) or of non-null values of a column (``Count("x")``)."""

    function = "count"
    needs_column = False


class Avg(Aggregation):
    """Arithmetic mean of a numeric column (a double)."""

    function = "avg"


class Min(Aggregation):
    """Smallest value of a column."""

    function = "min"


class Max(Aggregation):
    """Largest value of a column."""

    function = "max"


class CountDistinct(Aggregation):
    """Number of distinct non-null values of a column (exact)."""

    function = "count_distinct"


class Last(Aggregation):
    """Value of the latest event (by event time, then created time, then value)."""

    function = "last"


AGGREGATIONS: dict[str, type[Aggregation]] = {
    cls.function: cls for cls in (Sum, Count, Avg, Min, Max, CountDistinct, Last)
}
