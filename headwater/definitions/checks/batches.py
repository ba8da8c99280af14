"""Batch-level checks: they judge the rows of a run (or micro-batch) as a whole."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from headwater.definitions.checks.base import Check, column_name
from headwater.definitions.durations import format_millis, to_millis
from headwater.definitions.types import normalise_type
from headwater.errors import DefinitionError


@dataclass(frozen=True, kw_only=True)
class Schema(Check):
    """The batch has these columns with these types (and, with ``exact``, no others).

    ``types`` holds ``(column, type)`` pairs (a mapping is accepted); each type is a DuckDB type
    or an alias of :data:`~headwater.definitions.types.TYPE_ALIASES`, stored as the DuckDB type.
    """

    kind: ClassVar[str] = "schema"
    ROW_LEVEL: ClassVar[bool] = False
    types: tuple[tuple[str, str], ...]
    exact: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        types: object = self.types
        if isinstance(types, Mapping):
            types = tuple(types.items())
        if isinstance(types, str) or not isinstance(types, Sequence) or not types:
            raise DefinitionError(
                f"{self.where}: columns must be a non-empty mapping name -> type",
                fix='e.g. checks.schema({"user_id": "BIGINT", "amount": "DOUBLE"})',
            )
        pairs = tuple(
            (column_name(column, self.kind), normalise_type(kind, self.where))
            for column, kind in types
        )
        object.__setattr__(self, "types", pairs)
        object.__setattr__(self, "exact", bool(self.exact))

    def default_name(self) -> str:
        return self.kind

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.types)

    def describe(self) -> str:
        return "columns " + ", ".join(f"{n} {t}" for n, t in self.types)

    def params(self) -> dict[str, Any]:
        return {"columns": dict(self.types), "exact": self.exact}


@dataclass(frozen=True, kw_only=True)
class RowCount(Check):
    """The batch has between ``min_rows`` and ``max_rows`` rows (either may be None)."""

    kind: ClassVar[str] = "row_count"
    ROW_LEVEL: ClassVar[bool] = False
    min_rows: int | None = None
    max_rows: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        low, high = self.min_rows, self.max_rows
        for bound in (low, high):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
                raise DefinitionError(f"{self.where}: {bound!r} is not a row count", fix="min=1")
            if bound is not None and bound < 0:
                raise DefinitionError(f"{self.where}: {bound!r} is negative", fix="min=1")
        if low is None and high is None:
            raise DefinitionError(f"{self.where}: give min, max or both", fix="row_count(min=1)")
        if low is not None and high is not None and low > high:
            raise DefinitionError(
                f"{self.where}: min {low} is above max {high}",
                fix="pass the smaller bound as min",
            )

    def default_name(self) -> str:
        return self.kind

    def describe(self) -> str:
        low = "0" if self.min_rows is None else str(self.min_rows)
        high = "any" if self.max_rows is None else str(self.max_rows)
        return f"between {low} and {high} rows"

    def params(self) -> dict[str, Any]:
        return {"min": self.min_rows, "max": self.max_rows}


@dataclass(frozen=True, kw_only=True)
class Freshness(Check):
    """The newest event is at most ``max_age_ms`` old; ``column`` defaults to the event time
    (the source's ``timestamp_field``, or a view's ``event_timestamp``)."""

    kind: ClassVar[str] = "freshness"
    ROW_LEVEL: ClassVar[bool] = False
    max_age_ms: int
    column: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        to_millis(self.max_age_ms, what=f"{self.where}: max_age")
        if self.column is not None:
            column_name(self.column, self.kind)

    def default_name(self) -> str:
        return self.kind

    @property
    def columns(self) -> tuple[str, ...]:
        return () if self.column is None else (self.column,)

    def describe(self) -> str:
        return f"newest {self.column or 'event'} at most {format_millis(self.max_age_ms)} old"

    def params(self) -> dict[str, Any]:
        return {"max_age": format_millis(self.max_age_ms), "column": self.column}
