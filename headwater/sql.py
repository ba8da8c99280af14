"""SQL text: quoted identifiers and rendered literals, shared by every layer that writes SQL.

Values are bound as parameters wherever the database allows it; :func:`sql_literal` is for the
places that take no parameters (DuckDB views, COPY statements, UNLOAD texts).
"""

from __future__ import annotations

from typing import Any


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (DuckDB/PostgreSQL rules)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """Render a Python value as a DuckDB literal (strings quoted, quotes doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{sql_literal(str(k))}: {sql_literal(v)}" for k, v in value.items())
            + "}"
        )
    return "'" + str(value).replace("'", "''") + "'"


def hash_sql(value: str, salt: str) -> str:
    """DuckDB SQL of ``transforms.hash``: the hex SHA-256 of salt + the value as text (null
    stays null). ``salt`` is SQL giving the salt — a parameter or a query, never its text."""
    return f"sha256({salt} || CAST({value} AS VARCHAR))"


def mask_sql(value: str, keep_last: str, char: str) -> str:
    """DuckDB SQL of ``transforms.mask``: every character of the value (as text) but the last
    ``keep_last`` replaced by ``char``; a value no longer than ``keep_last`` entirely."""
    text = f"CAST({value} AS VARCHAR)"
    return (
        f"CASE WHEN length({text}) <= {keep_last} THEN repeat({char}, length({text})) "
        f"ELSE repeat({char}, length({text}) - {keep_last}) || right({text}, {keep_last}) END"
    )
