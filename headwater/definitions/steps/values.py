"""Steps that change the values of columns in place (or into an ``output`` column): fill,
bound, convert, scale, hash and mask."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from headwater.definitions.steps.base import (
    FitRange,
    Step,
    Value,
    column_name,
    column_names,
    missing_fit,
    plain_value,
)
from headwater.definitions.types import normalise_type
from headwater.errors import DefinitionError

STRATEGIES = ("mean", "median", "previous")
OUTLIER_METHODS = {"iqr": 1.5, "zscore": 3.0}
"""Outlier methods and their default ``factor``."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, kw_only=True)
class ColumnStep(Step):
    """A step on one column (its ``label`` is ``kind(column)``)."""

    column: str

    def __post_init__(self) -> None:
        super().__post_init__()
        column_name(self.column, self.kind)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.column,)

    @property
    def label(self) -> str:
        return f"{self.kind}({self.column})"


@dataclass(frozen=True, kw_only=True)
class FillNull(ColumnStep):
    """Replace nulls of ``column`` by ``value``, or by a ``strategy``: the mean or median (of
    the ``fit_range``, or of each run's rows), or the previous value by ``by`` in ``order_by``
    order (default: the view's join keys and the source's event time)."""

    kind: ClassVar[str] = "fill_null"
    value: Value | None = None
    strategy: str | None = None
    fit_range: FitRange | None = None
    by: Sequence[str] = ()
    order_by: Sequence[str] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        label = self.label
        if self.strategy is None and self.value is None:
            raise DefinitionError(
                f"{label} needs a value to fill with",
                fix=f'fill_null("{self.column}", 0), or "mean", "median" or "previous"',
            )
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise DefinitionError(
                f"{label}: unknown strategy {self.strategy!r}", fix="mean, median or previous"
            )
        if self.fit_range is not None and self.strategy not in ("mean", "median"):
            raise DefinitionError(
                f"{label}: fit= applies to the 'mean' and 'median' strategies",
                fix="drop fit=, or fill with 'mean' or 'median'",
            )
        if (self.by or self.order_by) and self.strategy != "previous":
            raise DefinitionError(
                f"{label}: by= and order_by= apply to the 'previous' strategy",
                fix="drop them, or fill with 'previous'",
            )
        if self.strategy is None:
            plain_value(self.value, label)
        object.__setattr__(self, "by", column_names(self.by, self.kind))
        object.__setattr__(self, "order_by", column_names(self.order_by, self.kind))

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.column, *self.by, *self.order_by)

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
class Clip(ColumnStep):
    """Bound ``column`` to ``[lower, upper]`` (either may be ``None``)."""

    kind: ClassVar[str] = "clip"
    lower: Value | None = None
    upper: Value | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        label, low, high = self.label, self.lower, self.upper
        if low is None and high is None:
            raise DefinitionError(
                f"{label} needs a lower or an upper bound", fix="clip('x', 0, 100)"
            )
        for bound in (low, high):
            if bound is not None:
                plain_value(bound, label)
        if low is not None and high is not None:
            try:
                inverted = low > high  # type: ignore[operator]  # mixed kinds raise TypeError
            except TypeError:
                raise DefinitionError(
                    f"{label}: bounds {low!r} and {high!r} are not comparable",
                    fix="give both bounds as numbers (or both as dates)",
                ) from None
            if inverted:
                raise DefinitionError(f"{label}: lower {low!r} is above upper {high!r}", fix="swap")

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "lower": self.lower, "upper": self.upper}


@dataclass(frozen=True, kw_only=True)
class Outliers(ColumnStep):
    """Clip (or null) values outside ``[q1 - f*IQR, q3 + f*IQR]`` or ``mean ± f*std``."""

    kind: ClassVar[str] = "outliers"
    method: str = "iqr"
    factor: float = OUTLIER_METHODS["iqr"]
    action: str = "clip"
    fit_range: FitRange | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        label = self.label
        if self.method not in OUTLIER_METHODS:
            raise DefinitionError(
                f"{label}: unknown method {self.method!r}", fix="method='iqr' or 'zscore'"
            )
        if self.action not in ("clip", "null"):
            raise DefinitionError(
                f"{label}: unknown action {self.action!r}", fix="action='clip' or 'null'"
            )
        factor = self.factor
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 0:
            raise DefinitionError(
                f"{label}: factor={factor!r} is not a positive number", fix="e.g. 3"
            )
        object.__setattr__(self, "factor", float(factor))

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
    """Convert columns to DuckDB types (``(column, type)`` pairs, or a mapping; aliases of
    :data:`~headwater.definitions.types.TYPE_ALIASES` are stored as the DuckDB type);
    ``on_error="null"`` turns failures into nulls."""

    kind: ClassVar[str] = "cast"
    types: tuple[tuple[str, str], ...]
    on_error: str = "fail"

    def __post_init__(self) -> None:
        super().__post_init__()
        pairs = tuple(self.types.items()) if isinstance(self.types, Mapping) else self.types
        if not pairs:
            raise DefinitionError("cast needs at least one column", fix='cast("x", "DOUBLE")')
        if self.on_error not in ("fail", "null"):
            raise DefinitionError(
                f"cast: on_error={self.on_error!r}", fix="on_error='fail' or 'null'"
            )
        types = tuple(
            (column_name(c, self.kind), normalise_type(t, f"cast({c})")) for c, t in pairs
        )
        object.__setattr__(self, "types", types)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.types)

    def params(self) -> dict[str, Any]:
        return {"types": dict(self.types), "on_error": self.on_error}


@dataclass(frozen=True, kw_only=True)
class Scale(ColumnStep):
    """Base of the fitted scalings: statistics come from the training range, never the batch;
    ``output`` names a new column to write instead of replacing ``column``."""

    fit_range: FitRange
    output: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.fit_range, FitRange):
            raise missing_fit(self.label)
        if self.output is not None:
            column_name(self.output, self.kind)

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


@dataclass(frozen=True, kw_only=True)
class Hash(ColumnStep):
    """SHA-256 (hex) of salt + value; the salt is read from the environment variable
    ``salt_env`` when the view runs, and is never stored."""

    kind: ClassVar[str] = "hash"
    salt_env: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.salt_env, str) or not _ENV_NAME.match(self.salt_env):
            raise DefinitionError(
                f"{self.label}: salt_env={self.salt_env!r} is not an environment variable name",
                fix='salt_env="PII_SALT"',
            )

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "salt_env": self.salt_env}


@dataclass(frozen=True, kw_only=True)
class Mask(ColumnStep):
    """Replace every character but the last ``keep_last`` with ``char``."""

    kind: ClassVar[str] = "mask"
    keep_last: int = 4
    char: str = "*"

    def __post_init__(self) -> None:
        super().__post_init__()
        keep = self.keep_last
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise DefinitionError(f"{self.label}: keep_last={keep!r}", fix="e.g. keep_last=4")
        if not isinstance(self.char, str) or len(self.char) != 1:
            raise DefinitionError(
                f"{self.label}: char={self.char!r} is not one character", fix="'*'"
            )

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "keep_last": self.keep_last, "char": self.char}
