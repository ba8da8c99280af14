"""Row-level checks: each row passes or fails (and can be quarantined)."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from headwater.definitions.checks.base import Check, ColumnCheck, Value, column_names
from headwater.definitions.types import normalise_type
from headwater.errors import DefinitionError
from headwater.sql import not_one_expression


@dataclass(frozen=True, kw_only=True)
class NotNull(ColumnCheck):
    kind: ClassVar[str] = "not_null"

    def describe(self) -> str:
        return f"{self.column} is not null"


@dataclass(frozen=True, kw_only=True)
class Unique(Check):
    """No two rows share the values of ``keys`` — in the batch and, with ``stored``, against
    the rows already stored (rows with a null key are not checked)."""

    kind: ClassVar[str] = "unique"
    keys: tuple[str, ...]
    stored: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "keys", column_names(self.keys, self.kind))
        object.__setattr__(self, "stored", bool(self.stored))

    def default_name(self) -> str:
        return f"unique({','.join(map(str, self.keys))})"

    @property
    def columns(self) -> tuple[str, ...]:
        return self.keys

    def describe(self) -> str:
        return f"{', '.join(self.keys)} unique"

    def params(self) -> dict[str, Any]:
        return {"columns": list(self.keys), "stored": self.stored}


@dataclass(frozen=True, kw_only=True)
class Between(ColumnCheck):
    """Values outside ``[min_value, max_value]`` (inclusive; either may be None) fail."""

    kind: ClassVar[str] = "between"
    min_value: Value | None = None
    max_value: Value | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        low, high = self.min_value, self.max_value
        if low is None and high is None:
            raise DefinitionError(
                f"{self.where}: give min_value, max_value or both", fix="between(c, 0)"
            )
        for bound in (low, high):
            if bound is not None and not isinstance(bound, Value):
                raise DefinitionError(
                    f"{self.where}: bound {bound!r} is not a number, text, date or datetime",
                    fix="e.g. between('amount', 0, 100_000)",
                )
        if low is not None and high is not None:
            try:
                ordered = low <= high  # type: ignore[operator]  # mixed types raise below
            except TypeError:
                ordered = False
            if not ordered:
                raise DefinitionError(
                    f"{self.where}: min_value {low!r} is not <= max_value {high!r}",
                    fix="pass the lower bound first",
                )

    def describe(self) -> str:
        low = "-inf" if self.min_value is None else str(self.min_value)
        high = "inf" if self.max_value is None else str(self.max_value)
        return f"{self.column} in [{low}, {high}]"

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "min": self.min_value, "max": self.max_value}


@dataclass(frozen=True, kw_only=True)
class InSet(ColumnCheck):
    """Values not in ``values`` fail."""

    kind: ClassVar[str] = "in_set"
    values: Sequence[Value]

    def __post_init__(self) -> None:
        super().__post_init__()
        values: object = self.values
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | set | frozenset):
            raise DefinitionError(
                f"{self.where}: values must be a list, not {values!r}",
                fix='e.g. in_set("status", ["new", "paid"])',
            )
        items = tuple(values)
        if not items:
            raise DefinitionError(f"{self.where}: the set of values is empty", fix="list them")
        for item in items:
            if not isinstance(item, Value):
                raise DefinitionError(
                    f"{self.where}: {item!r} is not a number, text, date or datetime",
                    fix="list plain values",
                )
        object.__setattr__(self, "values", items)

    def describe(self) -> str:
        shown = ", ".join(repr(v) for v in self.values[:10])
        return f"{self.column} in {{{shown}{', ...' if len(self.values) > 10 else ''}}}"

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "values": list(self.values)}


@dataclass(frozen=True, kw_only=True)
class Matches(ColumnCheck):
    """The value (as text) contains a match of ``pattern`` (anchor it with ``^...$``)."""

    kind: ClassVar[str] = "matches"
    pattern: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.pattern, str) or not self.pattern:
            raise DefinitionError(
                f"{self.where}: pattern must be a non-empty string", fix=r"e.g. r'^\d+$'"
            )
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise DefinitionError(
                f"{self.where}: the regular expression {self.pattern!r} does not compile: {exc}",
                fix="fix the pattern (RE2 syntax; escape backslashes or use a raw string r'...')",
            ) from None

    def describe(self) -> str:
        return f"{self.column} matches {self.pattern!r}"

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "pattern": self.pattern}


@dataclass(frozen=True, kw_only=True)
class MaxLength(ColumnCheck):
    """Values longer than ``length`` (characters; list elements; bytes for blobs) fail."""

    kind: ClassVar[str] = "max_length"
    length: int

    def __post_init__(self) -> None:
        super().__post_init__()
        length = self.length
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise DefinitionError(
                f"{self.where}: length={length!r} is not a non-negative int", fix="e.g. 64"
            )

    def describe(self) -> str:
        return f"length({self.column}) <= {self.length}"

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "length": self.length}


@dataclass(frozen=True, kw_only=True)
class ConformsTo(ColumnCheck):
    """The value can be read as ``type_name`` (a DuckDB type, or an alias of
    :data:`~headwater.definitions.types.TYPE_ALIASES`, stored as the DuckDB type)."""

    kind: ClassVar[str] = "type"
    type_name: str

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "type_name", normalise_type(self.type_name, self.where))

    def describe(self) -> str:
        return f"{self.column} is a valid {self.type_name}"

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "type": self.type_name}


@dataclass(frozen=True, kw_only=True)
class Expression(Check):
    """A SQL boolean over the row's columns; a row fails when it is false (null passes, as
    in a SQL ``CHECK`` constraint)."""

    kind: ClassVar[str] = "expression"
    sql: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.sql, str) or not self.sql.strip():
            raise DefinitionError("an expression check needs a SQL boolean", fix="'amount >= 0'")
        object.__setattr__(self, "sql", self.sql.strip())
        problem = not_one_expression(self.sql)
        if problem:
            raise DefinitionError(
                f"expression check: {problem}",
                fix="write one SQL boolean over the row's columns, e.g. 'amount >= 0'",
            )

    def default_name(self) -> str:
        flat = " ".join(str(self.sql).split())
        return f"expression({flat if len(flat) <= 60 else flat[:57] + '...'})"

    def describe(self) -> str:
        return self.sql

    def params(self) -> dict[str, Any]:
        return {"sql": self.sql}


@dataclass(frozen=True, kw_only=True)
class Sql(Check):
    """A query over ``{rows}`` (the batch) that returns the offending rows; needs ``name=``."""

    kind: ClassVar[str] = "sql"
    query: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.query, str) or "{rows}" not in self.query:
            raise DefinitionError(
                f"{self.where}: the query must select from {{rows}} (the batch)",
                fix="e.g. 'SELECT * FROM {rows} WHERE amount > credit_limit'",
            )
        object.__setattr__(self, "query", self.query.strip())

    def describe(self) -> str:
        return f"no row returned by {self.query!r}"

    def params(self) -> dict[str, Any]:
        return {"query": self.query}


BatchFunction = Callable[[Any], Any]
"""``fn(batch: pyarrow.RecordBatch)`` returning one boolean per row (row-level: true passes)
or a single bool for the whole batch."""


@dataclass(frozen=True, kw_only=True)
class Python(Check):
    """A Python function over Arrow record batches (called once per batch, never per row),
    given the columns ``only`` (every column when None)."""

    kind: ClassVar[str] = "python"
    function: BatchFunction = field(compare=False)
    only: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not callable(self.function):
            raise DefinitionError(
                f"a python check needs a function, not {self.function!r}",
                fix="checks.python(my_function)",
            )
        if self.only is not None:
            object.__setattr__(self, "only", column_names(self.only, self.kind))

    def default_name(self) -> str:
        return f"python({getattr(self.function, '__name__', 'check')})"

    @property
    def columns(self) -> tuple[str, ...]:
        return self.only or ()

    def describe(self) -> str:
        return f"{_qualname(self.function)}(batch) is true"

    def params(self) -> dict[str, Any]:
        return {"function": _qualname(self.function), "columns": list(self.only or ())}


def _qualname(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or ""
    qual = getattr(fn, "__qualname__", None) or builtins.type(fn).__name__
    return f"{module}.{qual}" if module else qual
