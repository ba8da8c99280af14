"""Landing tables: the current rows of an incremental source, for recomputing touched windows.

See :mod:`headwater.orchestration.runner` for why they exist. A landing table is a side table of
the offline store (``_landing/<view>``), keyed by the source's primary key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.engines.compile import Restriction, event_ms_sql, ms_to_ts_sql
from headwater.engines.windows import floormod_sql
from headwater.sql import quote_ident as q
from headwater.stores.offline.tables import landing_table

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.definitions import FeatureView
    from headwater.engines.base import BatchEngine
    from headwater.stores.offline.base import OfflineStore

_MIN, _MAX = -(2**63), 2**63 - 1


class Landing:
    """The landing table of one aggregation view over an incremental source."""

    def __init__(self, offline: OfflineStore, view: FeatureView) -> None:
        self.offline = offline
        self.view = view
        self.name = landing_table(view.name)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._overwrite = False

    def exists(self) -> bool:
        """Whether the landing table has been written."""
        return self.offline.read_table(self.name) is not None

    def apply(
        self, con: duckdb.DuckDBPyConnection, engine: BatchEngine, changed: str, *, fresh: bool
    ) -> pa.RecordBatchReader:
        """Return the recomputed rows of the windows ``changed`` touches.

        The landing table itself is not written here: call :meth:`commit` once the returned
        rows are in the offline store. Until then a crash leaves the replaced versions in the
        landing table, so the rerun finds (and empties) the windows they left.
        """
        source = self.view.source
        pk = ", ".join(q(k) for k in source.primary_key)
        cursor = getattr(source, "cursor_field", None)
        order = f"{q(cursor)} DESC" if cursor else "1"
        con.execute(
            f"CREATE TEMP TABLE __hw_changed AS SELECT * FROM {changed} "
            f"QUALIFY row_number() OVER (PARTITION BY {pk} ORDER BY {order}) = 1"
        )
        self._con = con  # __hw_changed stays in DuckDB (spilling) until commit()
        stored = None if fresh else self.offline.read_table(self.name)
        self._overwrite = stored is None
        if stored is None:
            return engine.compute(con, self.view, "__hw_changed")

        con.register("__hw_landing_before", stored)
        match = " AND ".join(f"l.{q(k)} = c.{q(k)}" for k in source.primary_key)
        con.execute(
            "CREATE TEMP TABLE __hw_old AS SELECT l.* FROM __hw_landing_before AS l "
            f"SEMI JOIN __hw_changed AS c ON {match}"
        )
        restriction = self._affected(con)
        # The landing table as it will be after the upsert: unchanged rows plus the new versions.
        con.execute(
            "CREATE TEMP VIEW __hw_landing AS SELECT l.* FROM __hw_landing_before AS l "
            f"ANTI JOIN __hw_changed AS c ON {match} "
            "UNION ALL BY NAME SELECT * FROM __hw_changed"
        )
        result = engine.compute(con, self.view, "__hw_landing", restriction).read_all()
        con.register("__hw_result", result)
        tombstones = self._tombstones(con, restriction)
        return con.sql(
            "SELECT *, false AS _deleted FROM __hw_result "
            f"UNION ALL BY NAME SELECT *, true AS _deleted FROM ({tombstones})"
        ).to_arrow_reader(100_000)

    def commit(self) -> None:
        """Upsert the rows given to :meth:`apply` (after their results were written)."""
        if self._con is None:
            return
        # Streamed from DuckDB, so a first load larger than memory lands in bounded memory.
        rows = self._con.sql("SELECT * FROM __hw_changed").to_arrow_reader(100_000)
        self.offline.write_table(
            self.name,
            rows,
            keys=self.view.source.primary_key,
            mode="overwrite" if self._overwrite else "upsert",
        )
        self._con = None

    def _affected(self, con: duckdb.DuckDBPyConnection) -> Restriction:
        """Register ``__hw_affected``: the (keys[, window start]) the change touches."""
        view = self.view
        keys = ", ".join(q(k) for k in view.join_keys)
        schema = con.sql("SELECT * FROM __hw_changed LIMIT 0").to_arrow_table().schema
        ts_index = schema.get_field_index(view.source.timestamp_field)
        ts_ms = event_ms_sql(view.source.timestamp_field, schema.field(ts_index).type)
        touched = (
            f"SELECT {keys}, {ts_ms} AS __ts FROM __hw_changed UNION "
            f"SELECT {keys}, {ts_ms} AS __ts FROM __hw_old"
        )
        valid = " AND ".join(["__ts IS NOT NULL"] + [f"{q(k)} IS NOT NULL" for k in view.join_keys])
        if view.window_ms is None:
            con.execute(
                f"CREATE TEMP TABLE __hw_affected AS SELECT DISTINCT {keys} "
                f"FROM ({touched}) WHERE {valid}"
            )
            return Restriction("__hw_affected", _MIN, _MAX)
        size, hop = view.window_ms
        last = f"(__ts - {floormod_sql('__ts', hop)})"
        con.execute(
            f"CREATE TEMP TABLE __hw_affected AS SELECT DISTINCT {keys}, "
            f"{last} - r.i * {hop} AS __ws FROM ({touched}) AS t "
            f"CROSS JOIN range(0, {size // hop}) AS r(i) WHERE {valid}"
        )
        row = con.sql("SELECT min(__ws), max(__ws) FROM __hw_affected").fetchall()[0]
        low, high = row or (None, None)
        if low is None or high is None:
            return Restriction("__hw_affected", 0, 0)
        return Restriction("__hw_affected", int(low), int(high) + size)

    def _tombstones(self, con: duckdb.DuckDBPyConnection, restriction: Restriction) -> str:
        """SQL of (keys, event_timestamp) rows that exist no more after the change."""
        view = self.view
        keys = ", ".join(q(k) for k in view.join_keys)
        if view.window_ms is not None:
            size = view.window_ms[0]
            return (
                f"SELECT {keys}, {ms_to_ts_sql(f'__ws + {size}')} "
                f"AS event_timestamp FROM __hw_affected "
                f"EXCEPT SELECT {keys}, event_timestamp FROM __hw_result"
            )
        dataset = self.offline.dataset(view.name)
        if dataset is None:
            return f"SELECT {keys}, event_timestamp FROM __hw_result WHERE false"
        con.register("__hw_offline", dataset)
        return (
            f"SELECT {keys}, event_timestamp FROM __hw_offline "
            f"WHERE ({keys}) IN (SELECT {keys} FROM {restriction.relation}) "
            f"EXCEPT SELECT {keys}, event_timestamp FROM __hw_result"
        )
