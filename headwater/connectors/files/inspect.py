"""What the files of a file source hold, file by file, before they are read together.

DuckDB reads a glob as one relation (``union_by_name``): a column that is ``DOUBLE`` in one file
and ``VARCHAR`` in another becomes ``VARCHAR``, a CSV whose rows have different numbers of fields
falls back to a single text column, and a CSV with a header and no rows has text columns. The
errors that follow (``sum(VARCHAR)``, a missing timestamp column, a cast error in the offline
store) name no file. :func:`inspect_files` looks at each local file first (its schema only: a
Parquet footer, a CSV sniff) and raises one line naming the file, the column and the fix; files
without rows are left out of the read, and a source whose files are all empty is reported empty
(a run of 0 rows).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.errors import DefinitionError
from headwater.sql import quote_ident as q
from headwater.sql import sql_literal

if TYPE_CHECKING:
    import pyarrow as pa
    from duckdb import DuckDBPyConnection

_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)
_COMPARABLE = ("number", "time", "VARCHAR")
_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_LINES = 100_000


@dataclass(kw_only=True)
class Inspection:
    """The files worth reading and the column types each one has."""

    files: list[str]
    """Files with rows (or whose emptiness could not be told), in path order."""
    empty: list[str]
    """Files without rows."""
    types: dict[str, tuple[str, str]]
    """Each column's DuckDB type and the first file having it (declared columns left out)."""


def inspect_files(
    con: DuckDBPyConnection,
    *,
    source: str,
    reader: str,
    files: list[str],
    options: dict[str, Any],
    declared: dict[str, str],
    root: str,
) -> Inspection:
    """Each file's columns, checked against the others'.

    Raises:
        DefinitionError: a CSV file read as one column (ragged rows), or a column whose type
            differs between two files (and is not declared in ``columns``).
    """
    import duckdb

    args = "".join(f", {key} = {sql_literal(value)}" for key, value in options.items())
    kept: list[str] = []
    empty: list[str] = []
    types: dict[str, tuple[str, str]] = {}  # column -> (type, first file having it)
    for path in files:
        if os.path.getsize(path) == 0:
            empty.append(path)
            continue
        relation = f"{reader}({sql_literal(path)}{args})"
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        except duckdb.Error as exc:
            raise DefinitionError(
                f"source {source!r}: cannot read {_shown(path, root)}: {str(exc).splitlines()[0]}",
                fix="check the file format and reader options",
            ) from None
        columns = {str(row[0]): str(row[1]) for row in described}
        if reader == "read_csv":
            _check_ragged(source, path, root, columns, options)
            if (
                all(t == "VARCHAR" for t in columns.values())
                and not con.execute(f"SELECT 1 FROM {relation} LIMIT 1").fetchall()
            ):
                empty.append(path)  # a header without rows: its columns' types are unknown
                continue
        kept.append(path)
        for column, type_name in columns.items():
            if column in declared:
                continue
            seen = types.setdefault(column, (type_name, path))
            if _family(seen[0]) != _family(type_name):
                raise DefinitionError(
                    f"source {source!r}: column {column!r} is {seen[0]} in "
                    f"{_shown(seen[1], root)} but {type_name} in {_shown(path, root)}",
                    fix="make the files agree, or read the column as one type: "
                    f"FileSource(..., columns={{{column!r}: {seen[0]!r}}})",
                )
    return Inspection(files=kept, empty=empty, types=types)


def changed_kinds(types: dict[str, tuple[str, str]], recorded: pa.Schema) -> list[str]:
    """Columns whose type changed kind since ``apply`` (a number then, text now)."""
    changed = []
    for field in recorded:
        found = types.get(field.name)
        if found is None:
            continue
        before, now = _arrow_family(field.type), _family(found[0])
        if before in _COMPARABLE and now in _COMPARABLE and before != now:
            changed.append(field.name)
    return changed


def check_values(
    con: DuckDBPyConnection,
    *,
    source: str,
    relation: str,
    recorded: pa.Schema,
    columns: list[str],
    root: str,
) -> None:
    """A value of ``columns`` that does not convert back to its type recorded at ``apply``
    could not be stored beside the view's rows: name the file, the column and the value.

    Raises:
        DefinitionError: the first such value found.
    """
    for column in columns:
        type_ = recorded.field(column).type
        target = {"number": "DOUBLE", "time": "TIMESTAMPTZ"}.get(_arrow_family(type_))
        if target is None:
            continue  # anything converts to text
        found = con.execute(
            f"SELECT filename, CAST({q(column)} AS VARCHAR) FROM {relation} "
            f"WHERE {q(column)} IS NOT NULL AND TRY_CAST({q(column)} AS {target}) IS NULL LIMIT 1"
        ).fetchall()
        if found:
            path, value = found[0]
            raise DefinitionError(
                f"source {source!r}: column {column!r} was {type_} at apply, but "
                f"{_shown(str(path), root)} has {value!r}, which is not one, and the view's "
                "stored rows cannot take it",
                fix="repair the file (schema_mode='discard_row' on the source sets such "
                "values aside)",
            )


def _arrow_family(type_: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "number"
    if pa.types.is_timestamp(type_) or pa.types.is_date(type_):
        return "time"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "VARCHAR"
    return str(type_)


def header_only_error(source: str, path: str, root: str, columns: list[str]) -> DefinitionError:
    """The error of a source whose CSV files have a header and no rows (types unknown)."""
    shown = ", ".join(repr(c) for c in columns)
    example = ", ".join(f"{c!r}: 'DOUBLE'" for c in columns[-1:])
    return DefinitionError(
        f"source {source!r}: {_shown(path, root)} has a header and no rows, so the types of "
        f"its columns ({shown}) are unknown",
        fix=f"declare them: FileSource(..., columns={{{example}, ...}}), or apply once the "
        "file has rows (an empty file is a run of 0 rows after that)",
    )


def _check_ragged(
    source: str, path: str, root: str, columns: dict[str, str], options: dict[str, Any]
) -> None:
    """A CSV whose rows do not all have the header's number of fields is read by DuckDB as one
    text column named after the whole header line."""
    if len(columns) != 1 or options.get("null_padding"):
        return
    (name,) = columns
    delimiter = options.get("delim") or options.get("sep")
    delimiter = delimiter or next((d for d in _DELIMITERS if d in name), None)
    if not delimiter or delimiter not in name:
        return
    where = ""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            rows = csv.reader(handle, delimiter=delimiter)
            header = next(rows, [])
            for number, row in enumerate(rows, start=2):
                if number > _SNIFF_LINES:
                    break
                if row and len(row) != len(header):
                    where = f" (line {number} has {len(row)} fields, the header {len(header)})"
                    break
    except OSError:
        pass
    raise DefinitionError(
        f"source {source!r}: {_shown(path, root)} was read as one column {name!r}: its rows "
        f"do not all have the header's number of fields{where}",
        fix="options={'null_padding': True} reads missing fields as null (extra ones become "
        "new columns), or repair the file",
    )


def _family(type_name: str) -> str:
    """Types DuckDB widens into each other when it reads files together share a family."""
    base = type_name.split("(")[0].strip().upper()
    if base in _NUMERIC:
        return "number"
    if base.startswith("TIMESTAMP") or base == "DATE":
        return "time"
    return type_name.upper()


def _shown(path: str, root: str) -> str:
    """``path`` relative to the project folder when it lies inside it."""
    try:
        relative = os.path.relpath(path, root)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative
