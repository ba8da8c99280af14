"""Cleaning-step declarations: the objects behind :mod:`headwater.transforms`.

A step is a plain, frozen declaration — which column, which bounds, which fit range — checked
when it is built. Feature views hold them (``FeatureView(..., transforms=[...])``);
:mod:`headwater.transforms.pipeline` compiles them to DuckDB SQL and runs them. This module
imports only definitions-level code, so feature views can hold steps without depending on the
machinery that runs them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from headwater.errors import DefinitionError

Value = int | float | str | bool | date | datetime


@dataclass(frozen=True)
class FitRange:
    """A training period ``[start, end)`` of the source's event time, in epoch milliseconds."""

    start_ms: int
    end_ms: int

    def to_spec(self) -> list[str]:
        return [_iso(self.start_ms), _iso(self.end_ms)]


@dataclass(frozen=True, kw_only=True)
class Step:
    """Base of every cleaning step.

    Class attributes say how a step behaves: ``STREAMING`` — it gives the same rows when applied
    to each micro-batch as when applied to the whole batch (row-level steps); ``REMOVES`` — the
    columns it takes away (checked against the columns a view must keep).
    """

    kind: ClassVar[str] = ""
    STREAMING: ClassVar[bool] = True

    @property
    def label(self) -> str:
        """How messages name the step: ``clip(amount)``."""
        return f"{self.kind}({', '.join(self.inputs)})"

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns the step reads (they must exist when it runs)."""
        return ()

    @property
    def removes(self) -> tuple[str, ...]:
        """The columns the step takes away (renamed, dropped, pivoted or unpivoted)."""
        return ()

    @property
    def fit(self) -> FitRange | None:
        """The training range of a step whose statistics are fitted once and stored."""
        return None

    @property
    def per_run_statistics(self) -> bool:
        """True when the step computes statistics over the rows of each run (no ``fit=``)."""
        return False

    @property
    def streaming(self) -> bool:
        """Whether the step means the same applied per micro-batch (see ``STREAMING``)."""
        return self.STREAMING and not self.per_run_statistics

    def params(self) -> dict[str, Any]:
        return {}

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description (recorded with the view; never holds a secret)."""
        return {"kind": self.kind} | {k: _jsonable(v) for k, v in self.params().items()}


@dataclass(frozen=True, kw_only=True)
class Dedupe(Step):
    """Keep one row per ``keys``: the greatest ``order_by`` (default: the source's event time)."""

    kind: ClassVar[str] = "dedupe"
    STREAMING: ClassVar[bool] = False
    keys: tuple[str, ...]
    order_by: tuple[str, ...] = ()

    @property
    def inputs(self) -> tuple[str, ...]:
        return (*self.keys, *self.order_by)

    @property
    def label(self) -> str:
        return f"dedupe({', '.join(self.keys)})"

    def params(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "order_by": list(self.order_by)}


STRATEGIES = ("mean", "median", "previous")


@dataclass(frozen=True, kw_only=True)
class FillNull(Step):
    """Replace nulls of ``column`` by a value, a mean or median, or the previous value."""

    kind: ClassVar[str] = "fill_null"
    column: str
    value: Value | None = None
    strategy: str | None = None
    fit_range: FitRange | None = None
    by: tuple[str, ...] = ()
    order_by: tuple[str, ...] = ()

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.column, *self.by, *self.order_by)

    @property
    def label(self) -> str:
        return f"fill_null({self.column})"

    @property
    def fit(self) -> FitRange | None:
        return self.fit_range if self.strategy in ("mean", "median") else None

    @property
    def per_run_statistics(self) -> bool:
        return self.strategy in ("mean", "median") and self.fit_range is None

    @property
    def streaming(self) -> bool:
        return self.strategy != "previous" and not self.per_run_statistics

    def params(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"column": self.column}
        if self.strategy is None:
            spec["value"] = self.value
        else:
            spec["strategy"] = self.strategy
        if self.fit_range is not None:
            spec["fit"] = self.fit_range.to_spec()
        if self.strategy == "previous":
            spec |= {"by": list(self.by), "order_by": list(self.order_by)}
        return spec


@dataclass(frozen=True, kw_only=True)
class Clip(Step):
    """Bound ``column`` to ``[lower, upper]`` (either may be ``None``)."""

    kind: ClassVar[str] = "clip"
    column: str
    lower: Value | None = None
    upper: Value | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.column,)

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "lower": self.lower, "upper": self.upper}


@dataclass(frozen=True, kw_only=True)
class Outliers(Step):
    """Clip (or null) values outside ``[q1 - f*IQR, q3 + f*IQR]`` or ``mean ± f*std``."""

    kind: ClassVar[str] = "outliers"
    column: str
    method: str = "iqr"
    factor: float = 1.5
    action: str = "clip"
    fit_range: FitRange | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def fit(self) -> FitRange | None:
        return self.fit_range

    @property
    def per_run_statistics(self) -> bool:
        return self.fit_range is None

    def params(self) -> dict[str, Any]:
        spec = {"column": self.column, "method": self.method, "factor": self.factor}
        spec["action"] = self.action
        if self.fit_range is not None:
            spec["fit"] = self.fit_range.to_spec()
        return spec


@dataclass(frozen=True, kw_only=True)
class Cast(Step):
    """Convert columns to DuckDB types; ``on_error="null"`` turns failures into nulls."""

    kind: ClassVar[str] = "cast"
    types: tuple[tuple[str, str], ...]
    on_error: str = "fail"

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.types)

    def params(self) -> dict[str, Any]:
        return {"types": dict(self.types), "on_error": self.on_error}


@dataclass(frozen=True, kw_only=True)
class Rename(Step):
    """Rename columns: ``(old, new)`` pairs."""

    kind: ClassVar[str] = "rename"
    names: tuple[tuple[str, str], ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(old for old, _ in self.names)

    @property
    def removes(self) -> tuple[str, ...]:
        return self.inputs

    def params(self) -> dict[str, Any]:
        return {"names": dict(self.names)}


@dataclass(frozen=True, kw_only=True)
class Scale(Step):
    """Base of the fitted scalings: statistics come from the training range, never the batch."""

    column: str
    fit_range: FitRange
    output: str | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def fit(self) -> FitRange:
        return self.fit_range

    def params(self) -> dict[str, Any]:
        spec = {"column": self.column, "fit": self.fit_range.to_spec()}
        return spec | ({"output": self.output} if self.output else {})


@dataclass(frozen=True, kw_only=True)
class Normalize(Scale):
    """``(x - min) / (max - min)`` with min and max fitted on the training range."""

    kind: ClassVar[str] = "normalize"


@dataclass(frozen=True, kw_only=True)
class Standardize(Scale):
    """``(x - mean) / std`` (population std) with both fitted on the training range."""

    kind: ClassVar[str] = "standardize"


PIVOT_AGGREGATIONS = ("max", "min", "sum", "avg", "count")


@dataclass(frozen=True, kw_only=True)
class Pivot(Step):
    """Long to wide: one column per value of ``column`` in ``names``, holding ``agg(values)``,
    one row per combination of the other columns."""

    kind: ClassVar[str] = "pivot"
    STREAMING: ClassVar[bool] = False
    column: str
    values: str
    names: tuple[tuple[str, str], ...]  # (value of `column`, output column)
    agg: str = "max"

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
class Unpivot(Step):
    """Wide to long: one row per input row and column of ``columns``."""

    kind: ClassVar[str] = "unpivot"
    columns: tuple[str, ...]
    name: str = "name"
    value: str = "value"

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.columns

    @property
    def removes(self) -> tuple[str, ...]:
        return self.columns

    def params(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "name": self.name, "value": self.value}


@dataclass(frozen=True, kw_only=True)
class Hash(Step):
    """SHA-256 (hex) of salt + value; the salt is read from the environment variable
    ``salt_env`` when the view runs, and is never stored."""

    kind: ClassVar[str] = "hash"
    column: str
    salt_env: str

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.column,)

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "salt_env": self.salt_env}


@dataclass(frozen=True, kw_only=True)
class Mask(Step):
    """Replace every character but the last ``keep_last`` with ``char``."""

    kind: ClassVar[str] = "mask"
    column: str
    keep_last: int = 4
    char: str = "*"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.column,)

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "keep_last": self.keep_last, "char": self.char}


@dataclass(frozen=True, kw_only=True)
class Drop(Step):
    """Remove columns."""

    kind: ClassVar[str] = "drop"
    columns: tuple[str, ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.columns

    @property
    def removes(self) -> tuple[str, ...]:
        return self.columns

    def params(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}


FRAMES = ("arrow", "pandas", "polars")
TableFunction = Callable[[Any], Any]


@dataclass(frozen=True, kw_only=True)
class PythonTransform(Step):
    """A Python function over a table of rows, for what SQL cannot say.

    It gets an Arrow table (``frame="pandas"``/``"polars"``: a DataFrame) of up to 100 000 rows
    at a time — a run's rows in chunks, or one streaming micro-batch — and returns the
    transformed rows (an Arrow table or record batch, or a pandas/polars DataFrame). Calling
    the step calls the function.
    """

    kind: ClassVar[str] = "python"
    function: TableFunction = field(compare=False)
    frame: str = "arrow"
    name: str = ""

    @property
    def label(self) -> str:
        return f"python({self.name})"

    def params(self) -> dict[str, Any]:
        module = getattr(self.function, "__module__", None) or ""
        qual = getattr(self.function, "__qualname__", None) or self.name
        return {"function": f"{module}.{qual}" if module else qual, "frame": self.frame}

    def __call__(self, table: Any) -> Any:
        return self.function(table)


# ---------------------------------------------------------------------- views and steps
def step_list(steps: object, view: str, source: Any, join_keys: Sequence[str]) -> tuple[Step, ...]:
    """Validate the ``transforms=`` of a view (at definition time): a list of steps that keep
    the columns the view's source needs (event time, created time, cursor, primary key, Kafka
    partition and offset) and its join keys."""
    if steps is None:
        return ()
    if isinstance(steps, Step):
        steps = [steps]
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence):
        raise DefinitionError(
            f"view {view!r}: transforms must be a list of steps, not {type(steps).__name__}",
            fix='transforms=[transforms.fill_null("amount", 0), transforms.drop("ssn")]',
        )
    found: list[Step] = []
    for position, item in enumerate(steps, start=1):
        if not isinstance(item, Step):
            hint = (
                f"decorate {getattr(item, '__name__', 'the function')} with @transforms.python"
                if callable(item)
                else "build steps with headwater.transforms: dedupe, fill_null, clip, ..."
            )
            raise DefinitionError(
                f"view {view!r}: transform {position} ({item!r}) is not a cleaning step", fix=hint
            )
        found.append(item)
    kept = {
        source.timestamp_field: "its source's timestamp_field",
        source.created_timestamp_field: "its source's created_timestamp_field",
        getattr(source, "cursor_field", None): "its source's cursor_field",
        **{key: "its source's primary_key" for key in source.primary_key},
        **{key: "a join key of its entity" for key in join_keys},
    }
    kept.pop(None, None)
    if getattr(source, "kind", "") == "kafka":
        from headwater.definitions.kafka import KAFKA_OFFSET, KAFKA_PARTITION

        for column in (KAFKA_PARTITION, KAFKA_OFFSET):
            kept[column] = "the message's place in its topic (dead letters name it)"
    for position, step in enumerate(found, start=1):
        for column in step.removes:
            if column in kept:
                raise DefinitionError(
                    f"view {view!r}: transform {position} ({step.label}) removes column "
                    f"{column!r}, which the view needs as {kept[column]}",
                    fix="keep the column (cast, fill or hash it in place instead), or change "
                    "the view's source or entity",
                )
    return tuple(found)


def step_key(steps: Sequence[Step], index: int) -> str:
    """Identity of the fitted statistics of ``steps[index]``: a digest of its spec and of every
    step before it (they shape the rows it is fitted on)."""
    specs = [s.to_spec() for s in steps[: index + 1]]
    text = json.dumps(specs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return value.isoformat() if isinstance(value, date) else str(value)
