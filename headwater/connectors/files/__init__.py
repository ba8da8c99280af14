"""Files in a data lake: CSV, JSON and Parquet, with globs and hive partitions, read by DuckDB.

Local files are looked at one by one first (:mod:`.inspect`): a column whose type differs
between files, or a CSV whose rows do not all have the header's number of fields, is one error
naming the file, the column and the fix; files without rows are left out, and a source without
rows (no file matches, or every file is empty) is a run of 0 rows.
"""

from __future__ import annotations

import glob
import os
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.connectors.base import Scan
from headwater.connectors.files.inspect import (
    changed_kinds,
    check_values,
    header_only_error,
    inspect_files,
)
from headwater.errors import DefinitionError
from headwater.sql import quote_ident as q
from headwater.sql import sql_literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.definitions import FileSource, Source

_READERS = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}


class FileConnector:
    """Reads a :class:`FileSource` through DuckDB's scanners (bounded memory, parallel)."""

    SUPPORTS_INCREMENTAL: ClassVar[bool] = False

    def __init__(self, source: Source, project: ProjectConfig) -> None:
        self.source: FileSource = source  # type: ignore[assignment]  # registered for kind "file"
        self.project = project
        self._types: dict[str, tuple[str, str]] = {}

    @property
    def location(self) -> str:
        path = self.project.resolve(self.source.path)
        if "://" not in path and os.path.isdir(path):
            ext = {"parquet": "parquet", "csv": "csv", "json": "json"}[self.source.format or ""]
            path = os.path.join(path, "**", f"*.{ext}")
        return path

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        hive = self.source.hive_partitioning
        if hive is None:
            hive = "=" in self.location or "**" in self.location
        options["hive_partitioning"] = bool(hive)
        options["union_by_name"] = True
        options.update(self.source.options)
        return options

    def _call(self, target: str | list[str], *, filename: bool = False) -> str:
        """The table function reading ``target``, with the declared column types applied
        (and each row's file in a ``filename`` column when asked)."""
        options = self._options() | ({"filename": True} if filename else {})
        args = ", ".join(f"{key} = {sql_literal(v)}" for key, v in options.items())
        call = f"{_READERS[self.source.format or '']}({sql_literal(target)}, {args})"
        if not self.source.columns:
            return call
        casts = ", ".join(
            f"CAST({q(column)} AS {type_name}) AS {q(column)}"
            for column, type_name in self.source.columns.items()
        )
        return f"(SELECT * REPLACE ({casts}) FROM {call})"

    def _plan(
        self, con: duckdb.DuckDBPyConnection, *, filename: bool = False
    ) -> tuple[str | None, list[str]]:
        """The relation to read (``None`` when the source has no rows) and the empty files."""
        location = self.location
        if "://" in location:
            return self._call(location, filename=filename), []  # remote: read as it is
        files = sorted(glob.glob(location, recursive=True))
        if not files:
            return None, []
        found = inspect_files(
            con,
            source=self.source.name,
            reader=_READERS[self.source.format or ""],
            files=files,
            options=self._options(),
            declared=self.source.columns,
            root=str(self.project.root),
        )
        self._types = found.types
        if not found.files:
            return None, found.empty
        target = found.files if found.empty else location
        return self._call(target, filename=filename), found.empty

    def relation(self) -> str:
        import duckdb

        con = duckdb.connect()
        try:
            relation, empty = self._plan(con)
        finally:
            con.close()
        if relation is None:
            raise self._empty_error(empty)
        return relation

    def _empty_error(self, empty: list[str]) -> DefinitionError:
        if not empty:
            return DefinitionError(
                f"source {self.source.name!r}: no file matches {self.source.path!r} "
                f"(looked for {self.location})",
                fix="check the path (relative paths are read from the project folder)",
            )
        return DefinitionError(
            f"source {self.source.name!r}: every file of {self.source.path!r} is empty",
            fix="apply once a file has rows (an empty source is a run of 0 rows after that)",
        )

    def schema(self) -> pa.Schema:
        """The source's columns; a source whose files have no rows needs its types declared."""
        import duckdb

        con = duckdb.connect()
        try:
            relation, empty = self._plan(con)
            if relation is None:
                relation = self._header_only(con, empty)
            schema = con.sql(f"SELECT * FROM {relation} LIMIT 0").to_arrow_table().schema
        except duckdb.Error as exc:
            raise DefinitionError(
                f"source {self.source.name!r}: cannot read {self.source.path!r}: "
                f"{str(exc).splitlines()[0]}",
                fix="check the file format, reader options and columns={...} types",
            ) from None
        finally:
            con.close()
        missing = [c for c in self.source.columns if c not in schema.names]
        if missing:
            raise DefinitionError(
                f"source {self.source.name!r}: columns={{...}} names {', '.join(missing)}, "
                f"not a column of {self.source.path!r} (columns: {', '.join(schema.names)})",
                fix="declare types only for columns the files have",
            )
        return schema

    def _header_only(self, con: duckdb.DuckDBPyConnection, empty: list[str]) -> str:
        """The relation of CSV files that have a header and no rows, when every column's
        type is declared; otherwise the error saying so."""
        csvs = [path for path in empty if os.path.getsize(path) > 0]
        if not csvs:
            raise self._empty_error(empty)
        header = [
            str(row[0])
            for row in con.execute(f"DESCRIBE SELECT * FROM {self._call(csvs[:1])}").fetchall()
        ]
        unknown = [c for c in header if c not in self.source.columns]
        if unknown:
            raise header_only_error(self.source.name, csvs[0], str(self.project.root), unknown)
        return self._call(csvs)

    def changed_kinds(self, recorded: pa.Schema) -> list[str]:
        """After a scan: columns whose type changed kind since ``apply`` (a number then, text
        now), under ``schema_mode='evolve'`` (the other modes convert or stop on their own)."""
        if self.source.schema_mode != "evolve":
            return []
        return changed_kinds(self._types, recorded)

    def check_values(
        self, con: duckdb.DuckDBPyConnection, recorded: pa.Schema, columns: list[str]
    ) -> None:
        """Refuse a value of ``columns`` that does not convert to its recorded type, naming the
        file it is in (called when the view already stores rows of the recorded type)."""
        relation, _ = self._plan(con, filename=True)
        if relation is None:
            return
        check_values(
            con,
            source=self.source.name,
            relation=relation,
            recorded=recorded,
            columns=columns,
            root=str(self.project.root),
        )

    def scan(self, con: duckdb.DuckDBPyConnection, *, checkpoint: Any = None) -> Scan:
        relation, _ = self._plan(con)
        if relation is None:
            return Scan(relation="", empty=True)
        return Scan(relation=relation)
