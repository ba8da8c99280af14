"""Quarantine tables: the rows a view's checks set aside, in the offline store next to its history.

The side table ``<view>__quarantine`` holds, for each quarantined row, its own columns (the
source's columns for rows set aside before computing, the view's for computed rows) and:

========================= =====================================================================
``_check``                the first check the row failed (declaration order)
``_reason``               every quarantine check it failed, with the offending value
``_run_id``               the run that set it aside
``_stage``                ``source`` or ``view``
``_quarantined_at``       when
``_row_key``              a digest of the stage and the row's values (plus a counter among
                          identical rows): a rerun over the same input stores nothing twice
========================= =====================================================================

Rows are written with the offline store's keyed ``insert`` (only unknown ``_row_key``\\ s are
added), so writing the same run again (or a crash followed by a rerun) leaves the table as it
was; new columns are added to the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.quality.results import QUARANTINE_COLUMNS
from headwater.sql import quote_ident as q
from headwater.sql import sql_literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.stores.offline.base import OfflineStore

SUFFIX = "__quarantine"
KEY = "_row_key"
_BATCH_ROWS = 100_000


def quarantine_table(view: str) -> str:
    """The side table holding ``view``'s quarantined rows."""
    return view + SUFFIX


def quarantine_location(offline: OfflineStore, view: str) -> str:
    """Where ``view``'s quarantine table lives (a path or URL of the offline store)."""
    return offline.location(quarantine_table(view))


def write_quarantine(
    con: duckdb.DuckDBPyConnection, relation: str, *, stage: str, offline: OfflineStore, view: str
) -> int:
    """Add the rows of ``relation`` (own columns + ``_check``, ``_reason``, ``_run_id``) to
    ``view``'s quarantine table; return how many were new."""
    columns = [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    own = [c for c in columns if c not in QUARANTINE_COLUMNS]
    packed = "{" + ", ".join(f"{sql_literal(c)}: {q(c)}" for c in own) + "}"
    digest = f"md5({sql_literal(stage)} || CAST({packed} AS VARCHAR))"
    reader = con.sql(
        f"SELECT *, {sql_literal(stage)} AS _stage, now() AS _quarantined_at, "
        f"{digest} || '-' || row_number() OVER (PARTITION BY {digest}) AS {KEY} FROM {relation}"
    ).to_arrow_reader(_BATCH_ROWS)
    return offline.write_table(quarantine_table(view), reader, keys=[KEY], mode="insert")


def read_quarantine(offline: OfflineStore, view: str) -> pa.Table | None:
    """The quarantine table of ``view`` as an Arrow table, or ``None`` if nothing was ever
    quarantined."""
    dataset = offline.read_table(quarantine_table(view))
    return None if dataset is None else dataset.to_table()
