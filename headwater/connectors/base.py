"""The source-connector protocol.

A connector turns a :class:`~headwater.definitions.Source` into something the batch engine can
select from (a DuckDB relation) and, for incremental sources, tells the new checkpoint once the
scan has been read to the end. Connectors never advance a checkpoint themselves: the
orchestrator commits it only after the data it covers is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.definitions import Source


@dataclass
class Scan:
    """One read of a source, ready to be selected from.

    Attributes:
        relation: SQL text usable after ``FROM`` (a table function call or a view name).
        checkpoint: called after the relation was consumed; the checkpoint to commit once the
            results are written (``None`` when the source is not incremental).
        rows_read: called after the relation was consumed; rows the source yielded.
        one_shot: the relation is a stream that can be read once (a registered Arrow reader),
            which the runner stages in DuckDB before using it.
    """

    relation: str
    checkpoint: Callable[[], Any] = field(default=lambda: None)
    rows_read: Callable[[], int | None] = field(default=lambda: None)
    one_shot: bool = False


class SourceConnector(Protocol):
    """What every source connector implements."""

    SUPPORTS_INCREMENTAL: ClassVar[bool]

    def __init__(self, source: Source, project: ProjectConfig) -> None: ...

    def schema(self) -> pa.Schema:
        """The columns the source yields (read cheaply: metadata or ``LIMIT 0``)."""
        ...

    def scan(self, con: duckdb.DuckDBPyConnection, *, checkpoint: Any = None) -> Scan:
        """Prepare a read from ``checkpoint`` (``None`` = from the beginning)."""
        ...
