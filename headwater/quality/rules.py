"""Row-level checks compiled to DuckDB SQL.

Each row-level check becomes a :class:`RowRule`: a predicate that is true for an offending row
(values bound as parameters, never formatted into the text), a predicate telling which rows the
check applies to (the denominator of ``mostly``), and a text expression explaining a failure,
which the quarantine table stores in ``_reason``. Checks written in Python or as a query that
returns the offending rows have no predicate: the evaluator flags their rows afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from headwater.definitions.checks import (
    Between,
    Check,
    ConformsTo,
    Expression,
    InSet,
    Matches,
    MaxLength,
    NotNull,
    Python,
    Sql,
    Unique,
)
from headwater.quality.contract import NewColumn
from headwater.sql import quote_ident as q
from headwater.sql import sql_literal

ROW = "__hw_row"
"""A row number added when a check is evaluated outside SQL (Python or a query)."""

_VALUE_CHARS = 120
"""Values quoted in ``_reason`` are cut to this many characters."""


@dataclass(frozen=True)
class StoredKeys:
    """Rows already stored, for ``unique`` checks that look beyond the batch.

    Attributes:
        relation: a DuckDB relation (a registered table, view or table function) holding the
            stored rows; a ``unique`` check applies to it when it has all the check's columns.
        identity: the write key of a row (e.g. join keys and ``event_timestamp``): a stored row
            with the same identity is the same row written again (a rerun), not a duplicate.
    """

    relation: str
    identity: tuple[str, ...] = ()


@dataclass
class RowRule:
    """A row-level check in SQL: see the module docstring."""

    check: Check
    flag: str
    fail: str | None
    checked: str
    reason: str
    params: list[Any] = field(default_factory=list)
    extras: dict[str, str] = field(default_factory=dict)
    joins: list[str] = field(default_factory=list)
    sample: tuple[str, ...] = ()


def compile_rule(
    check: Check,
    index: int,
    relation: str,
    types: dict[str, str],
    stored: StoredKeys | None = None,
    stored_columns: Sequence[str] = (),
) -> RowRule:
    """The SQL of row-level ``check`` (the ``index``-th) over the batch ``relation`` (read as
    ``__hw_r``) with column ``types``."""
    flag = f"__hw_f{index}"
    prefix = f"{check.name}: "
    if isinstance(check, NotNull):
        col = q(check.column)
        return RowRule(
            check,
            flag,
            f"{col} IS NULL",
            "true",
            _text(f"{prefix}{check.column} is null"),
            sample=_first(types),
        )
    if isinstance(check, NewColumn):
        col = q(check.column)
        return RowRule(
            check,
            flag,
            f"{col} IS NOT NULL",
            "true",
            f"concat({_text(f'{prefix}{check.column} = ')}, {_value(check.column)}, "
            f"{_text(' is in a column the schema does not have')})",
            sample=(check.column,),
        )
    if isinstance(check, Unique):
        return _unique(check, index, relation, flag, prefix, stored, stored_columns, types)
    if isinstance(check, Between):
        col = q(check.column)
        bounds: list[str] = []
        params: list[Any] = []
        if check.min_value is not None:
            bounds.append(f"{col} >= ?")
            params.append(check.min_value)
        if check.max_value is not None:
            bounds.append(f"{col} <= ?")
            params.append(check.max_value)
        low = "-inf" if check.min_value is None else str(check.min_value)
        high = "inf" if check.max_value is None else str(check.max_value)
        return _column_rule(
            check,
            flag,
            f"NOT ({' AND '.join(bounds)})",
            params,
            prefix,
            f"is outside [{low}, {high}]",
        )
    if isinstance(check, InSet):
        marks = ", ".join("?" for _ in check.values)
        return _column_rule(
            check,
            flag,
            f"{q(check.column)} NOT IN ({marks})",
            list(check.values),
            prefix,
            "is not in " + check.describe().partition(" in ")[2],
        )
    if isinstance(check, Matches):
        fail = f"NOT regexp_matches(CAST({q(check.column)} AS VARCHAR), ?)"
        return _column_rule(
            check, flag, fail, [check.pattern], prefix, f"does not match {check.pattern!r}"
        )
    if isinstance(check, MaxLength):
        size = _length(check.column, types.get(check.column, ""))
        rule = _column_rule(check, flag, f"{size} > ?", [check.length], prefix, "")
        rule.reason = (
            f"concat({_text(f'{prefix}{check.column} has length ')}, {size}, "
            f"{_text(f', more than {check.length}')})"
        )
        return rule
    if isinstance(check, ConformsTo):
        fail = f"TRY_CAST({q(check.column)} AS {check.type_name}) IS NULL"
        return _column_rule(check, flag, fail, [], prefix, f"is not a valid {check.type_name}")
    if isinstance(check, Expression):
        return RowRule(
            check,
            flag,
            f"NOT coalesce(({check.sql}), true)",
            "true",
            _text(f"{prefix}{check.sql} is false"),
            sample=_first(types),
        )
    if isinstance(check, Sql):
        return RowRule(
            check,
            flag,
            None,
            "true",
            _text(f"{prefix}returned by the check's query"),
            sample=_first(types),
        )
    if isinstance(check, Python):
        return RowRule(
            check,
            flag,
            None,
            "true",
            _text(f"{prefix}{check.describe().removesuffix(' is true')} returned false"),
            sample=check.only or _first(types),
        )
    raise TypeError(f"{type(check).__name__} is not a row-level check")  # pragma: no cover


def _unique(
    check: Unique,
    index: int,
    relation: str,
    flag: str,
    prefix: str,
    stored: StoredKeys | None,
    stored_columns: Sequence[str],
    types: dict[str, str],
) -> RowRule:
    keys = [q(k) for k in check.keys]
    present = " AND ".join(f"{k} IS NOT NULL" for k in keys)
    count = f"__hw_n{index}"
    # How often a row's key occurs in the batch: the keys seen more than once, grouped apart
    # and joined back (a hash join against the few duplicated keys, much cheaper than a window
    # over the whole batch).
    dups = f"__hw_d{index}"
    listed = ", ".join(keys)
    joins = [
        f"LEFT JOIN (SELECT {listed}, count(*) AS {count} FROM {relation} AS __hw_g "
        f"WHERE {present} GROUP BY {listed} HAVING count(*) > 1) AS {dups} ON "
        + " AND ".join(f"__hw_r.{k} = {dups}.{k}" for k in keys)
    ]
    extras = {count: f"coalesce({dups}.{count}, 1)"}
    seen = "false"
    if check.stored and stored is not None and all(k in stored_columns for k in check.keys):
        match = [f"__hw_s.{k} = __hw_r.{k}" for k in keys]
        identity = list(stored.identity)
        if identity and all(c in stored_columns and c in types for c in identity):
            same = " AND ".join(
                f"__hw_s.{q(c)} IS NOT DISTINCT FROM __hw_r.{q(c)}" for c in identity
            )
            match.append(f"NOT ({same})")
        seen = f"__hw_e{index}"
        extras[seen] = (
            f"EXISTS (SELECT 1 FROM {stored.relation} AS __hw_s WHERE {' AND '.join(match)})"
        )
    values = "concat_ws(', ', " + ", ".join(_value(k) for k in check.keys) + ")"
    label = _text(f"{prefix}{', '.join(check.keys)} = ")
    reason = (
        f"CASE WHEN {count} > 1 THEN concat({label}, {values}, ' appears ', {count}, "
        f"' times in the batch') ELSE concat({label}, {values}, ' is already stored') END"
    )
    return RowRule(
        check,
        flag,
        f"({present}) AND ({count} > 1 OR {seen})",
        present,
        reason,
        extras=extras,
        joins=joins,
        sample=check.keys,
    )


def _column_rule(
    check: Check, flag: str, fail: str, params: list[Any], prefix: str, words: str
) -> RowRule:
    column = check.columns[0]
    present = f"{q(column)} IS NOT NULL"
    reason = f"concat({_text(f'{prefix}{column} = ')}, {_value(column)}, {_text(' ' + words)})"
    return RowRule(
        check, flag, f"{present} AND ({fail})", present, reason, params, sample=(column,)
    )


def _length(column: str, duck_type: str) -> str:
    col = q(column)
    if duck_type == "VARCHAR":
        return f"length({col})"
    if duck_type == "BLOB":
        return f"octet_length({col})"
    if duck_type.endswith("[]"):
        return f"len({col})"
    return f"length(CAST({col} AS VARCHAR))"


def _value(column: str) -> str:
    return f"left(CAST({q(column)} AS VARCHAR), {_VALUE_CHARS})"


def _text(value: str) -> str:
    return sql_literal(value)


def _first(types: dict[str, str], limit: int = 6) -> tuple[str, ...]:
    return tuple(list(types)[:limit])
