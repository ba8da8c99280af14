"""Offline store on plain hive-partitioned Parquet (``<path>/<view>/event_date=YYYY-MM-DD/``).

For engines that read Parquet but not Delta. A write stages the incoming rows, then rewrites
each touched partition as one new file (old rows with the same key replaced or deleted) and
swaps it in with an atomic rename; a crash leaves either the old or the new partition file,
and a rerun converges to the same content. No time travel.

Side tables (landing, quarantine, dead letters) are one Parquet file each,
``<path>/<name>/data.parquet``, rewritten whole by each write and swapped in with an atomic
rename.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from headwater.config.models import OfflineStoreConfig
from headwater.sql import quote_ident as q
from headwater.sql import sql_literal
from headwater.stores.offline.base import DELETED, PARTITION, SEQ, WriteStats, with_storage_columns
from headwater.stores.offline.tables import Feed, TableMode, check_write, conformed

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as pads

    from headwater.config import ProjectConfig
    from headwater.definitions import FeatureView


class ParquetOfflineStoreConfig(OfflineStoreConfig):
    """``offline_store`` of ``type: parquet``: history in plain hive-partitioned Parquet
    folders, one per feature view."""

    type: Literal["parquet"] = "parquet"


TABLE_FILE = "data.parquet"
"""The one file of a side table."""


class ParquetOfflineStore:
    """One folder of hive-partitioned Parquet files per feature view."""

    config_model: ClassVar[type[ParquetOfflineStoreConfig]] = ParquetOfflineStoreConfig
    SUPPORTS_TIME_TRAVEL: ClassVar[bool] = False

    def __init__(self, config: ParquetOfflineStoreConfig, project: ProjectConfig) -> None:
        self.root = Path(project.resolve(config.path))

    def location(self, view_name: str) -> str:
        return str(self.root / view_name)

    def write(self, view: FeatureView, data: pa.RecordBatchReader, *, seq: int) -> WriteStats:
        import duckdb
        import pyarrow.parquet as pq

        schema, batches = with_storage_columns(data, seq)
        table_dir = Path(self.location(view.name))
        table_dir.mkdir(parents=True, exist_ok=True)
        stats = {"inserted": 0, "updated": 0, "deleted": 0}
        with tempfile.TemporaryDirectory(dir=table_dir, prefix=".staging-") as staging:
            staged = os.path.join(staging, "incoming.parquet")
            with pq.ParquetWriter(staged, schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
            con = duckdb.connect()
            con.execute("SET TimeZone='UTC'")
            try:
                days = [
                    r[0]
                    for r in con.execute(
                        f"SELECT DISTINCT CAST({PARTITION} AS VARCHAR) FROM read_parquet(?)",
                        [staged],
                    ).fetchall()
                ]
                for day in days:
                    self._merge_partition(con, view, schema, staged, table_dir, day, stats)
            finally:
                con.close()
        return WriteStats(**stats)

    def _merge_partition(
        self,
        con: duckdb.DuckDBPyConnection,
        view: FeatureView,
        schema: pa.Schema,
        staged: str,
        table_dir: Path,
        day: str,
        stats: dict[str, int],
    ) -> None:
        part_dir = table_dir / f"{PARTITION}={day}"
        old_files = sorted(str(p) for p in part_dir.glob("*.parquet")) if part_dir.exists() else []
        keys = [*view.join_keys, "event_timestamp"]
        stored = [n for n in schema.names if n not in (DELETED, PARTITION)]
        values = [n for n in stored if n not in (*keys, SEQ)]
        has_deleted = DELETED in schema.names
        key_match = " AND ".join(f"o.{q(k)} = n.{q(k)}" for k in keys)
        not_deleted = f"NOT n.{q(DELETED)}" if has_deleted else "true"
        newer = "true"
        if view.has_created_timestamp:
            newer = "(o.created_timestamp IS NULL OR n.created_timestamp >= o.created_timestamp)"
        differs = " OR ".join(f"o.{q(c)} IS DISTINCT FROM n.{q(c)}" for c in values) or "false"
        # Views cannot hold prepared parameters: paths go in as escaped literals.
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW n AS SELECT * FROM read_parquet({sql_literal(staged)}) "
            f"WHERE CAST({PARTITION} AS VARCHAR) = {sql_literal(day)}"
        )
        if old_files:
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW o AS SELECT * FROM read_parquet("
                f"{sql_literal(old_files)}, hive_partitioning = false, union_by_name = true)"
            )
        else:
            cols = ", ".join(q(c) for c in stored)
            con.execute(f"CREATE OR REPLACE TEMP VIEW o AS SELECT {cols} FROM n WHERE false")
        old_cols = ", ".join(f"o.{q(c)}" for c in stored)
        new_cols = ", ".join(f"n.{q(c)}" for c in stored)
        # Keep old rows not replaced; take new rows that insert or win the update rule.
        merged = f"""
            SELECT {old_cols} FROM o WHERE NOT EXISTS (
                SELECT 1 FROM n WHERE {key_match}
                  AND ({"n." + q(DELETED) if has_deleted else "false"}
                       OR ({not_deleted} AND {newer} AND ({differs}))))
            UNION ALL
            SELECT {new_cols} FROM n WHERE {not_deleted} AND (
                NOT EXISTS (SELECT 1 FROM o WHERE {key_match})
                OR EXISTS (SELECT 1 FROM o WHERE {key_match} AND {newer} AND ({differs})))
        """
        counts = con.sql(f"""
            SELECT
              count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM o WHERE {key_match})
                               AND {not_deleted}),
              count(*) FILTER (WHERE EXISTS (SELECT 1 FROM o WHERE {key_match} AND {newer}
                               AND ({differs})) AND {not_deleted}),
              count(*) FILTER (WHERE EXISTS (SELECT 1 FROM o WHERE {key_match})
                               AND NOT ({not_deleted}))
            FROM n
        """).fetchall()[0]
        stats["inserted"] += int(counts[0])
        stats["updated"] += int(counts[1])
        stats["deleted"] += int(counts[2])
        if not any(counts):
            return
        part_dir.mkdir(parents=True, exist_ok=True)
        tmp = part_dir / f".part-{uuid.uuid4().hex}.parquet.tmp"
        con.execute(f"COPY ({merged} ORDER BY ALL) TO {sql_literal(str(tmp))} (FORMAT parquet)")
        final = part_dir / f"part-{uuid.uuid4().hex}.parquet"
        os.replace(tmp, final)
        for old in old_files:
            os.remove(old)

    def dataset(self, view_name: str) -> pads.Dataset | None:
        import pyarrow as pa
        import pyarrow.dataset as pads

        location = Path(self.location(view_name))
        files = sorted(location.glob(f"{PARTITION}=*/part-*.parquet"))
        if not files:
            return None
        return pads.dataset(
            [str(f) for f in files],
            format="parquet",
            partitioning=pads.partitioning(pa.schema([(PARTITION, pa.date32())]), flavor="hive"),
            partition_base_dir=str(location),
        )

    # ------------------------------------------------------------------ side tables
    def write_table(
        self, name: str, data: pa.RecordBatchReader, *, keys: Sequence[str], mode: TableMode
    ) -> int:
        """Write a side table (see :mod:`headwater.stores.offline.tables`): the stored rows and
        the incoming ones are combined in DuckDB into a new file that replaces the old one."""
        import duckdb
        import pyarrow.parquet as pq

        check_write(name, keys, mode)
        folder = Path(self.location(name))
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / TABLE_FILE
        stored = None if mode == "overwrite" or not target.exists() else pq.read_schema(target)
        if stored is not None:
            data = conformed(data, stored, str(folder))
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            feed = Feed.of(data)
            con.register("__hw_in", feed.reader())
            with feed.errors():
                con.execute("CREATE TEMP TABLE incoming AS SELECT * FROM __hw_in")
            merged, changed = "SELECT * FROM incoming", "incoming"
            if stored is not None:
                path = sql_literal(str(target))
                con.execute(f"CREATE TEMP VIEW stored AS SELECT * FROM read_parquet({path})")
                match = " AND ".join(f"s.{q(k)} = i.{q(k)}" for k in keys)
                if mode == "upsert":
                    merged = (
                        f"SELECT s.* FROM stored AS s ANTI JOIN incoming AS i ON {match} "
                        "UNION ALL BY NAME SELECT * FROM incoming"
                    )
                else:
                    con.execute(
                        "CREATE TEMP TABLE fresh AS SELECT i.* FROM incoming AS i "
                        f"ANTI JOIN stored AS s ON {match}"
                    )
                    merged = "SELECT * FROM stored UNION ALL BY NAME SELECT * FROM fresh"
                    changed = "fresh"
            written = int(con.sql(f"SELECT count(*) FROM {changed}").fetchall()[0][0])
            if stored is not None and not written:
                return 0
            staging = folder / f".{TABLE_FILE}.{uuid.uuid4().hex}.tmp"
            con.execute(f"COPY ({merged}) TO {sql_literal(str(staging))} (FORMAT parquet)")
            os.replace(staging, target)
            return written
        finally:
            con.close()

    def read_table(self, name: str) -> pads.Dataset | None:
        """A side table as a pyarrow dataset (``None`` before its first write)."""
        import pyarrow.dataset as pads

        target = Path(self.location(name)) / TABLE_FILE
        return pads.dataset(str(target), format="parquet") if target.exists() else None

    def delete_view(self, view_name: str) -> None:
        shutil.rmtree(self.location(view_name), ignore_errors=True)
