"""The batch-engine protocol: what runs, backfills, materializations, dry runs and training sets
need of an engine.

An engine is opened for a project (:func:`headwater.engines.open_engine`, by ``engine.type``)
and gives *sessions*: connections in which a run reads its source (connectors register their
reads there), checks and cleaning steps run, and the view is computed. Every engine computes a
view with the semantics of the design brief (windows aligned to the UTC epoch, ``[start, end)``,
the window end as event time, the latest-row and tie rules) and joins training sets point in
time with Feast's semantics; the shared suites run the same definitions on every engine and
compare the rows.

A session speaks DuckDB's Python API (``execute``, ``sql``, ``register``, ``cursor``): checks
and cleaning steps compile to SQL run there. DuckDB is the one engine today; an engine that
computes elsewhere (Spark) gives sessions of its own and says which views it can run through
its class attributes, refusing the others at ``apply``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads

    from headwater.config import ProjectConfig
    from headwater.config.models import EngineConfig
    from headwater.definitions import FeatureView
    from headwater.engines.compile import Restriction

Session = Any
"""A session of an engine (a ``duckdb.DuckDBPyConnection`` for the DuckDB engine)."""


@dataclass(frozen=True)
class FeatureRequest:
    """The features of one view a training set asks for.

    Attributes:
        view: the feature view.
        features: the names of its features wanted.
        history: its offline history (``None`` before its first write).
        schema: the view's output schema (recorded at ``apply``).
    """

    view: FeatureView
    features: list[str]
    history: pads.Dataset | None
    schema: pa.Schema


class BatchEngine(Protocol):
    """What every batch engine implements (see the module docstring)."""

    config_model: ClassVar[type[EngineConfig]]
    """The model of the ``engine`` section of ``headwater.yaml`` for this engine's type."""

    def __init__(self, project: ProjectConfig) -> None: ...

    def connect(self) -> Session:
        """A new session (close it when done)."""
        ...

    def validate(self, view: FeatureView, schema: pa.Schema) -> pa.Schema:
        """Check ``view`` against its source's columns; return the view's output schema.

        Raises:
            DefinitionError: naming the view, the field and the fix.
        """
        ...

    def compute(
        self,
        con: Session,
        view: FeatureView,
        relation: str,
        restriction: Restriction | None = None,
        batch_rows: int = 100_000,
        time_range: tuple[int, int] | None = None,
        *,
        ordered: bool = False,
    ) -> pa.RecordBatchReader:
        """Stream ``view``'s output rows computed from ``relation`` (the source rows, after
        checks and cleaning steps): all of them, those of the keys and windows of a
        ``restriction`` (incremental aggregations), or those whose event time falls in
        ``time_range`` (backfills). With ``ordered``, in ``event_timestamp`` order, the reader's
        schema marked :data:`headwater.stores.offline.base.TIME_ORDERED` (stores then write
        without sorting again)."""
        ...

    def unplaceable_rows(self, con: Session, view: FeatureView, relation: str) -> tuple[int, int]:
        """``(rows, rows without an event time or a join key)`` of ``relation``."""
        ...

    def point_in_time_join(
        self,
        entities: pa.Table,
        requests: Sequence[FeatureRequest],
        *,
        full_feature_names: bool = False,
        order: Sequence[tuple[str, str]] | None = None,
    ) -> pa.Table:
        """A training set: each entity row with, per view, the feature row of the greatest
        ``event_timestamp`` at or before the row's time (and within the view's ttl); columns
        of the features in ``order`` (``(view, feature)`` pairs)."""
        ...
