"""Steps that change which rows or columns there are: dedupe, rename, drop, pivot, unpivot, and
Python functions over tables."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from headwater.definitions.steps.base import Step, column_name, column_names
from headwater.errors import DefinitionError

PIVOT_AGGREGATIONS = ("max", "min", "sum", "avg", "count")
FRAMES = ("arrow", "pandas", "polars")
TableFunction = Callable[[Any], Any]


@dataclass(frozen=True, kw_only=True)
class Dedupe(Step):
    """Keep one row per ``keys``: the greatest ``order_by`` (default: the source's event time)."""

    kind: ClassVar[str] = "dedupe"
    STREAMING: ClassVar[bool] = False
    keys: Sequence[str]
    order_by: Sequence[str] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "keys", column_names(self.keys, self.kind, "keys"))
        object.__setattr__(self, "order_by", column_names(self.order_by, self.kind))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (*self.keys, *self.order_by)

    @property
    def label(self) -> str:
        return f"dedupe({', '.join(self.keys)})"

    def params(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "order_by": list(self.order_by)}


@dataclass(frozen=True, kw_only=True)
class Rename(Step):
    """Rename columns: ``(old, new)`` pairs (or a mapping)."""

    kind: ClassVar[str] = "rename"
    names: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        pairs = tuple(self.names.items()) if isinstance(self.names, Mapping) else self.names
        names = tuple(
            (column_name(old, self.kind), column_name(to, self.kind)) for old, to in pairs
        )
        targets = [to for _, to in names]
        if not names or len(set(targets)) != len(targets):
            raise DefinitionError("rename: give each column one distinct new name", fix="check it")
        object.__setattr__(self, "names", names)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(old for old, _ in self.names)

    @property
    def removes(self) -> tuple[str, ...]:
        return self.inputs

    def params(self) -> dict[str, Any]:
        return {"names": dict(self.names)}


@dataclass(frozen=True, kw_only=True)
class ColumnsStep(Step):
    """A step that reads and takes away ``columns`` (at least one)."""

    columns: Sequence[str]

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "columns", column_names(self.columns, self.kind, "columns"))

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.columns)

    @property
    def removes(self) -> tuple[str, ...]:
        return tuple(self.columns)


@dataclass(frozen=True, kw_only=True)
class Drop(ColumnsStep):
    """Remove columns."""

    kind: ClassVar[str] = "drop"

    def params(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}


@dataclass(frozen=True, kw_only=True)
class Pivot(Step):
    """Long to wide: one column per value of ``column`` in ``names``, holding ``agg(values)``,
    one row per combination of the other columns."""

    kind: ClassVar[str] = "pivot"
    STREAMING: ClassVar[bool] = False
    column: str
    values: str
    names: tuple[tuple[str, str], ...]  # (value of `column`, output column); or a mapping
    agg: str = "max"

    def __post_init__(self) -> None:
        super().__post_init__()
        column = column_name(self.column, self.kind)
        column_name(self.values, self.kind)
        pairs = tuple(self.names.items()) if isinstance(self.names, Mapping) else self.names
        if not pairs:
            raise DefinitionError(
                f"pivot({column}) needs the values that become columns",
                fix='names=["clicks", "views"]',
            )
        names = tuple((str(value), column_name(to, self.kind)) for value, to in pairs)
        object.__setattr__(self, "names", names)
        if self.agg not in PIVOT_AGGREGATIONS:
            raise DefinitionError(
                f"pivot({column}): unknown agg {self.agg!r}",
                fix=f"one of {', '.join(PIVOT_AGGREGATIONS)}",
            )

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.column, self.values)

    @property
    def removes(self) -> tuple[str, ...]:
        return self.inputs

    def params(self) -> dict[str, Any]:
        names = dict(self.names)
        return {"column": self.column, "values": self.values, "names": names, "agg": self.agg}


@dataclass(frozen=True, kw_only=True)
class Unpivot(ColumnsStep):
    """Wide to long: one row per input row and column of ``columns``, with the column's name in
    ``name`` and its value in ``value``."""

    kind: ClassVar[str] = "unpivot"
    name: str = "name"
    value: str = "value"

    def __post_init__(self) -> None:
        super().__post_init__()
        column_name(self.name, self.kind)
        column_name(self.value, self.kind)

    def params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "name": self.name, "value": self.value}


@dataclass(frozen=True, kw_only=True)
class PythonTransform(Step):
    """A Python function over a table of rows, for what SQL cannot say.

    It gets an Arrow table (``frame="pandas"``/``"polars"``: a DataFrame) of up to 100 000 rows
    at a time — a run's rows in chunks, or one streaming micro-batch — and returns the
    transformed rows (an Arrow table or record batch, or a pandas/polars DataFrame). Calling
    the step calls the function. ``name`` defaults to the function's name.
    """

    kind: ClassVar[str] = "python"
    function: TableFunction = field(compare=False)
    frame: str = "arrow"
    name: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_frame(self.frame)
        if not callable(self.function):
            raise DefinitionError(
                f"transforms.python needs a function, not {self.function!r}",
                fix="@transforms.python",
            )
        if not self.name:
            object.__setattr__(self, "name", str(getattr(self.function, "__name__", "transform")))

    @property
    def label(self) -> str:
        return f"python({self.name})"

    def params(self) -> dict[str, Any]:
        module = getattr(self.function, "__module__", None) or ""
        qual = getattr(self.function, "__qualname__", None) or self.name
        return {"function": f"{module}.{qual}" if module else qual, "frame": self.frame}

    def __call__(self, table: Any) -> Any:
        return self.function(table)


def check_frame(frame: object) -> str:
    """``frame`` if it is a table flavour a Python step can take."""
    if frame not in FRAMES:
        raise DefinitionError(
            f"transforms.python: unknown frame {frame!r}", fix="arrow, pandas or polars"
        )
    return str(frame)
