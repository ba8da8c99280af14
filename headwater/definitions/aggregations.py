"""Aggregations computed per entity over event-time windows (or the entity's whole lifetime).

Each aggregation ignores NULL inputs, like SQL. ``Last`` keeps the value of the event with the
greatest ``(event time, created time, value)`` so that ties resolve the same way in every engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from headwater.definitions.naming import check_name
from headwater.errors import DefinitionError


@dataclass(frozen=True, kw_only=True)
class Aggregation:
    """Base class: one output column computed from one input column. A kind is a subclass
    setting ``function`` (and ``needs_column``); it inherits the fields and their checks.

    Args:
        column: the input column (``Count()`` takes none: it counts events).
        name: the output column; defaults to ``<column>_<function>`` (``amount_sum``), or the
            function's name without a column (``count``).
    """

    function: ClassVar[str] = ""
    needs_column: ClassVar[bool] = True
    column: str | None = field(default=None, kw_only=False)
    name: str = ""

    def __post_init__(self) -> None:
        if self.needs_column and not self.column:
            raise DefinitionError(
                f"{type(self).__name__}() needs the column to aggregate",
                fix=f'{type(self).__name__}("amount", name="amount_{self.function}")',
            )
        default = f"{self.column}_{self.function}" if self.column else self.function
        object.__setattr__(self, "name", check_name(self.name or default, "feature"))

    def __repr__(self) -> str:
        arg = f"{self.column!r}, " if self.column else ""
        return f"{type(self).__name__}({arg}name={self.name!r})"

    def to_spec(self) -> dict[str, Any]:
        return {"function": self.function, "column": self.column, "name": self.name}


class Sum(Aggregation):
    """Sum of a numeric column."""

    function: ClassVar[str] = "sum"


class Count(Aggregation):
    """Number of events (``Count()``) or of non-null values of a column (``Count("x")``)."""

    function: ClassVar[str] = "count"
    needs_column: ClassVar[bool] = False


class Avg(Aggregation):
    """Arithmetic mean of a numeric column (a double)."""

    function: ClassVar[str] = "avg"


class Min(Aggregation):
    """Smallest value of a column."""

    function: ClassVar[str] = "min"


class Max(Aggregation):
    """Largest value of a column."""

    function: ClassVar[str] = "max"


class CountDistinct(Aggregation):
    """Number of distinct non-null values of a column (exact)."""

    function: ClassVar[str] = "count_distinct"


class Last(Aggregation):
    """Value of the latest event (by event time, then created time, then value)."""

    function: ClassVar[str] = "last"


AGGREGATIONS: dict[str, type[Aggregation]] = {
    cls.function: cls for cls in (Sum, Count, Avg, Min, Max, CountDistinct, Last)
}
