"""Files in a data lake: CSV, JSON and Parquet, with globs and hive partitions, read by DuckDB."""

from __future__ import annotations

import glob
import os
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.errors import DefinitionError
from headwater.sql import sql_literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.definitions import FileSource, Source

from headwater.connectors.base import Scan

_READERS = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}


class FileConnector:
    """Reads a :class:`FileSource` through DuckDB's scanners (bounded memory, parallel)."""

    SUPPORTS_INCREMENTAL: ClassVar[bool] = False

    def __init__(self, source: Source, project: ProjectConfig) -> None:
        self.source: FileSource = source  # type: ignore[assignment]  # registered for kind "file"
        self.project = project

    @property
    def location(self) -> str:
        path = self.project.resolve(self.source.path)
        if "://" not in path and os.path.isdir(path):
            ext = {"parquet": "parquet", "csv": "csv", "json": "json"}[self.source.format or ""]
            path = os.path.join(path, "**", f"*.{ext}")
        return path

    def relation(self) -> str:
        location = self.location
        if "://" not in location and not glob.glob(location, recursive=True):
            raise DefinitionError(
                f"source {self.source.name!r}: no file matches {self.source.path!r} "
                f"(looked for {location})",
                fix="check the path (relative paths are read from the project folder)",
            )
        options: dict[str, Any] = {}
        hive = self.source.hive_partitioning
        if hive is None:
            hive = "=" in location or "**" in location
        options["hive_partitioning"] = bool(hive)
        options["union_by_name"] = True
        options.update(self.source.options)
        args = ", ".join(f"{key} = {sql_literal(value)}" for key, value in options.items())
        reader = _READERS[self.source.format or ""]
        return f"{reader}({sql_literal(location)}, {args})"

    def schema(self) -> pa.Schema:
        import duckdb

        con = duckdb.connect()
        try:
            return con.sql(f"SELECT * FROM {self.relation()} LIMIT 0").to_arrow_table().schema
        except duckdb.Error as exc:
            raise DefinitionError(
                f"source {self.source.name!r}: cannot read {self.source.path!r}: "
                f"{str(exc).splitlines()[0]}",
                fix="check the file format and reader options",
            ) from None
        finally:
            con.close()

    def scan(self, con: duckdb.DuckDBPyConnection, *, checkpoint: Any = None) -> Scan:
        return Scan(relation=self.relation())
