"""A described PostgreSQL read: its columns, their Arrow types, parameters and SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from headwater.connectors.postgres import typemap as pg_types

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.connectors.postgres.session import SessionParams


@dataclass
class ReadPlan:
    """A described read: its columns, Arrow schema, parameters and SQL (no partition yet)."""

    columns: list[pg_types.PgColumn]
    schema: pa.Schema
    params: SessionParams
    base: str
    """The SELECT with cursor bounds; parameters rendered as session-setting references."""

    def column(self, name: str) -> pg_types.PgColumn:
        """The result column called ``name``."""
        return next(c for c in self.columns if c.name == name)

    def sql(self, where: str = "") -> str:
        """The statement the driver copies: conversions in the SELECT list, then ``where``."""
        select = ", ".join(pg_types.select_expr(c) for c in self.columns)
        return f"SELECT {select} FROM ({self.base}) AS hw" + (f" WHERE {where}" if where else "")
