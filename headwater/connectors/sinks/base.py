"""What every warehouse sink writer implements, and the pieces the writers share.

A writer loads the rows of one feature view into one warehouse table. It is constructed as
``Writer(sink, view, project)`` and used as:

1. :meth:`SinkWriter.last_seq` — the greatest offline write sequence (``_seq``) already loaded
   into the table, read from the sink state table that lives next to it (``None`` when the
   table or its state is missing: everything is sent);
2. :meth:`SinkWriter.write` — stage the rows, then in one transaction apply them to the table
   (upsert / append / replace) *and* record ``seq`` in the state table, so a crash leaves
   either both or neither;
3. :meth:`SinkWriter.close`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from headwater.errors import ConfigError, HeadwaterError

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.definitions import FeatureView
    from headwater.definitions.sinks import Sink

STATE_TABLE = "headwater_sink_state"
"""Per schema: one row per (target table, view) holding the last loaded write sequence."""
STAGE_TABLE = "headwater_stage"
"""The temporary table rows are bulk-loaded into before they are applied."""


class SinkError(HeadwaterError):
    """A warehouse sink could not load a view's rows (the run fails before its checkpoint)."""


@dataclass(frozen=True)
class SinkStats:
    """What one load did."""

    table: str
    mode: str
    rows: int
    """Rows sent to the warehouse (staged)."""
    seconds: float = 0.0


class SinkWriter(Protocol):
    """What every sink writer implements."""

    SUPPORTS_UPSERT: ClassVar[bool]

    def last_seq(self) -> int | None:
        """The last write sequence loaded into the table, or ``None`` to send every row."""
        ...

    def write(
        self, schema: pa.Schema, batches: Iterable[pa.RecordBatch], *, seq: int, run_id: str
    ) -> SinkStats:
        """Load ``batches`` (rows of ``schema``) and record ``seq`` in one transaction."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def sink_connection(project: ProjectConfig, sink: Sink, view: FeatureView) -> Any:
    """The ``headwater.yaml`` connection the sink names, checked to be of the sink's kind."""
    conn = project.connections.get(sink.connection)
    where = f"view {view.name!r}: {sink.kind} sink to {sink.table!r}"
    if conn is None:
        known = ", ".join(sorted(project.connections)) or "none"
        raise ConfigError(
            f"{where}: connection {sink.connection!r} is not defined in headwater.yaml "
            f"(defined: {known})",
            fix=f"add connections: {{{sink.connection}: {{type: {sink.kind}, ...}}}}",
        )
    if conn.type != sink.kind:
        raise ConfigError(
            f"{where}: connection {sink.connection!r} is of type {conn.type!r}",
            fix=f"point the sink at a connection of type {sink.kind}",
        )
    return conn


def merge_keys(view: FeatureView) -> list[str]:
    """The columns identifying a row: the view's join keys and ``event_timestamp``."""
    return [*view.join_keys, "event_timestamp"]


def missing_columns(
    schema: pa.Schema, existing: Iterable[str], *, fold_case: bool = False
) -> list[str]:
    """Columns of ``schema`` the table lacks, in schema order."""
    have = {c.lower() if fold_case else c for c in existing}
    return [n for n in schema.names if (n.lower() if fold_case else n) not in have]


def check_evolution(sink: Sink, view: FeatureView, missing: list[str]) -> None:
    """Raise when columns are missing and the sink may not add them."""
    if missing and not sink.evolve:
        raise SinkError(
            f"view {view.name!r}: table {sink.table!r} lacks the column(s) "
            f"{', '.join(missing)}, and the sink has evolve=False",
            fix="add them (ALTER TABLE ... ADD COLUMN), or set evolve=True on the sink",
        )


def check_keys(sink: Sink, view: FeatureView, schema: pa.Schema) -> None:
    """Raise when the rows lack a merge key column (a view always has them)."""
    absent = [k for k in merge_keys(view) if k not in schema.names]
    if absent:
        raise SinkError(
            f"view {view.name!r}: rows for {sink.table!r} lack the key column(s) {absent}",
            fix="run the view again so its offline table has its join keys and event_timestamp",
        )
