"""The base of every check declaration, and the rules for a source's or view's ``checks=``."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from headwater.definitions.specs import jsonable
from headwater.errors import DefinitionError

Severity = Literal["warn", "quarantine", "fail"]
SEVERITIES: tuple[str, ...] = ("warn", "quarantine", "fail")
SchemaMode = Literal["evolve", "freeze", "discard_row", "discard_column"]
SCHEMA_MODES: tuple[str, ...] = ("evolve", "freeze", "discard_row", "discard_column")

Value = int | float | Decimal | str | date | datetime | bool


@dataclass(frozen=True, kw_only=True)
class Check:
    """Base of every check: a name, a severity and, for row-level checks, ``mostly``.

    A kind sets ``kind`` (its name in specs and results), declares its own fields, checks and
    normalises them in ``__post_init__`` (after calling this one), names itself in
    ``default_name()`` and returns its fields from ``params()``.

    Attributes:
        name: unique among the checks of one source or view; names the check in results, in
            the quarantine table's ``_check`` column and in error messages. Left empty, the
            kind's ``default_name()`` (``not_null(user_id)``).
        severity: ``"warn"``, ``"quarantine"`` or ``"fail"``.
        mostly: for row-level checks, the share of rows (0 < mostly <= 1) that must pass.
    """

    kind: ClassVar[str] = ""
    ROW_LEVEL: ClassVar[bool] = True
    """Whether the check judges each row (and can quarantine the offending ones)."""

    name: str = ""
    severity: str = "fail"
    mostly: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.default_name())
        where = self.where
        if not isinstance(self.name, str) or not self.name.strip():
            raise DefinitionError(f"a {self.kind} check needs a name", fix="pass name='...'")
        if self.severity not in SEVERITIES:
            raise DefinitionError(
                f"{where}: unknown severity {self.severity!r}",
                fix="use severity='warn', 'quarantine' or 'fail'",
            )
        mostly = self.mostly
        if mostly is not None:
            if isinstance(mostly, bool) or not isinstance(mostly, int | float):
                raise DefinitionError(
                    f"{where}: mostly={mostly!r} is not a number", fix="e.g. mostly=0.99"
                )
            if not 0 < mostly <= 1:  # also refuses NaN
                raise DefinitionError(
                    f"{where}: mostly={mostly!r} is outside (0, 1]",
                    fix="mostly is the share of rows that must pass, e.g. mostly=0.99",
                )
            if not self.ROW_LEVEL:
                raise DefinitionError(
                    f"{where}: mostly= applies to row-level checks; {self.kind} judges the "
                    "whole batch",
                    fix="drop mostly=",
                )
        if self.severity == "quarantine" and not self.ROW_LEVEL:
            raise DefinitionError(
                f"{where}: severity='quarantine' sets offending rows aside, but {self.kind} "
                "judges the whole batch",
                fix="use severity='warn' or 'fail'",
            )

    def default_name(self) -> str:
        """The name of a check declared without one (empty: the kind needs ``name=``)."""
        return ""

    @property
    def where(self) -> str:
        """How errors name the check: ``check 'not_null(user_id)'``."""
        return f"check {self.name!r}"

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the check reads (checked to exist at ``apply``)."""
        return ()

    def describe(self) -> str:
        """What a passing row (or batch) satisfies, in words."""
        return self.kind

    def params(self) -> dict[str, Any]:
        """The check's own parameters, JSON-able (for registry specs)."""
        return {}

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description recorded with the definition."""
        spec: dict[str, Any] = {"kind": self.kind, "name": self.name, "severity": self.severity}
        if self.mostly is not None:
            spec["mostly"] = self.mostly
        spec.update({k: jsonable(v) for k, v in self.params().items()})
        return spec


@dataclass(frozen=True, kw_only=True)
class ColumnCheck(Check):
    """A row-level check on one column; null values are not checked (except by not_null)."""

    column: str

    def __post_init__(self) -> None:
        super().__post_init__()
        column_name(self.column, self.kind)

    def default_name(self) -> str:
        return f"{self.kind}({self.column})"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def params(self) -> dict[str, Any]:
        return {"column": self.column}


def column_name(column: object, kind: str) -> str:
    """``column`` if it is a column name, else an error naming the kind of check."""
    if not isinstance(column, str) or not column:
        raise DefinitionError(
            f"a {kind} check needs a column name, not {column!r}", fix=f'{kind}("user_id", ...)'
        )
    return column


def column_names(columns: Sequence[str] | str, kind: str) -> tuple[str, ...]:
    """A non-empty tuple of column names (a lone name is accepted)."""
    found = (columns,) if isinstance(columns, str) else tuple(columns)
    if not found:
        raise DefinitionError(f"a {kind} check needs at least one column", fix=f'{kind}("id")')
    return tuple(column_name(c, kind) for c in found)


def check_list(checks: object, owner: str) -> tuple[Check, ...]:
    """Validate the ``checks=`` of a source or view: a list of checks with distinct names."""
    if checks is None:
        return ()
    if isinstance(checks, Check):
        checks = [checks]
    if isinstance(checks, str | bytes) or not isinstance(checks, Sequence):
        raise DefinitionError(
            f"{owner}: checks must be a list of checks, not {builtins.type(checks).__name__}",
            fix='checks=[checks.not_null("user_id")]',
        )
    found: list[Check] = []
    for item in checks:
        if not isinstance(item, Check):
            raise DefinitionError(
                f"{owner}: {item!r} is not a check",
                fix="build checks with headwater.checks: not_null, unique, between, ...",
            )
        found.append(item)
    names = [c.name for c in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DefinitionError(
            f"{owner}: two checks are named {twice[0]!r}",
            fix="give one of them another name= (names are unique per source or view)",
        )
    return tuple(found)


def check_schema_mode(mode: object, owner: str) -> str:
    """Validate a source's ``schema_mode=``."""
    if mode not in SCHEMA_MODES:
        raise DefinitionError(
            f"{owner}: unknown schema_mode {mode!r}",
            fix="use 'evolve', 'freeze', 'discard_row' or 'discard_column'",
        )
    return str(mode)
