"""SQL text: quoted identifiers and rendered literals, shared by every layer that writes SQL.

Values are bound as parameters wherever the database allows it; :func:`sql_literal` is for the
places that take no parameters (DuckDB views, COPY statements, UNLOAD texts).
"""

from __future__ import annotations

import functools
import threading
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


_PARSER: list[Any] = []
_PARSER_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4096)
def not_one_expression(expression: str) -> str | None:
    """Why the SQL text ``expression`` is not one expression, or ``None`` when it is.

    User SQL (feature expressions, expression checks, type names) is spliced into the queries
    headwater runs, and DuckDB executes every statement of a query text: ``sum(x); COPY t TO
    '/tmp/x'`` would write a file. The text is parsed, never executed: it must make exactly one
    ``SELECT`` of one column with no ``FROM``, ``WHERE`` or other clause (a ``--`` comment
    hiding the rest of a query shows up as one). A text that does not parse at all returns
    ``None``: the caller's own check reports the syntax error, nothing of it having run.
    """
    import json

    import duckdb

    text = f"SELECT ({expression}) AS __hw_expression"
    for candidate in (f"SELECT {expression}", text):  # bare, and as headwater's queries hold it
        try:
            count = len(duckdb.extract_statements(candidate))
        except duckdb.Error:
            continue
        if count != 1:
            return f"{expression!r} holds {count} SQL statements, not one expression"
    try:
        duckdb.extract_statements(text)
    except duckdb.Error:
        return None
    with _PARSER_LOCK:  # one in-memory connection that only parses (connecting takes ~20 ms)
        if not _PARSER:
            _PARSER.append(duckdb.connect())
        serialized = _PARSER[0].execute("SELECT json_serialize_sql(?)", [text]).fetchall()
    found = json.loads(serialized[0][0])
    if found.get("error"):
        return None
    node = found["statements"][0]["node"]
    alone = (
        node.get("type") == "SELECT_NODE"
        and node.get("from_table", {}).get("type") == "EMPTY"
        and len(node.get("select_list", [])) == 1
        and not node.get("where_clause")
        and not node.get("having")
        and not node.get("qualify")
        and not node.get("group_expressions")
        and not node.get("modifiers")
        and not node.get("cte_map", {}).get("map")
    )
    return None if alone else f"{expression!r} is not one SQL expression (it ends a clause early)"


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
