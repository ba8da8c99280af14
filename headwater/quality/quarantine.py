"""Quarantine tables: the rows a view's checks set aside, in Delta Lake next to its history.

``<offline path>/<view>__quarantine/`` holds, for each quarantined row, its own columns (the
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

Rows are appended with a Delta ``MERGE`` that inserts only unknown ``_row_key``\\ s, so writing
the same run again (or a crash followed by a rerun) leaves the table as it was; new columns
are added to the table (schema merge).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from headwater.errors import RunFailed
from headwater.quality.results import QUARANTINE_COLUMNS
from headwater.sql import quote_ident as q
from headwater.sql import sql_literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig

SUFFIX = "__quarantine"
KEY = "_row_key"
_BATCH_ROWS = 100_000


def quarantine_location(project: ProjectConfig, view: str) -> tuple[str, dict[str, str]]:
    """Where ``view``'s quarantine table lives, and the storage options to reach it (the
    offline store's, so S3 credentials and endpoints are shared)."""
    store = project.offline_store
    root = project.resolve(store.path).rstrip("/")
    options = getattr(store, "storage_options", None) or {}
    return f"{root}/{view}{SUFFIX}", {k: v.get_secret_value() for k, v in options.items()}


def write_quarantine(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    *,
    stage: str,
    location: str,
    storage_options: dict[str, str] | None = None,
) -> int:
    """Add the rows of ``relation`` (own columns + ``_check``, ``_reason``, ``_run_id``) to the
    quarantine table at ``location``; return how many were new."""
    import pyarrow as pa

    columns = [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    own = [c for c in columns if c not in QUARANTINE_COLUMNS]
    packed = "{" + ", ".join(f"{sql_literal(c)}: {q(c)}" for c in own) + "}"
    digest = f"md5({sql_literal(stage)} || CAST({packed} AS VARCHAR))"
    reader = con.sql(
        f"SELECT *, {sql_literal(stage)} AS _stage, now() AS _quarantined_at, "
        f"{digest} || '-' || row_number() OVER (PARTITION BY {digest}) AS {KEY} FROM {relation}"
    ).to_arrow_reader(_BATCH_ROWS)
    table = _table(location, storage_options)
    if table is None:
        from deltalake import write_deltalake

        written = 0

        def counted() -> Iterator[pa.RecordBatch]:
            nonlocal written
            for batch in reader:
                written += batch.num_rows
                yield batch

        write_deltalake(
            location,
            pa.RecordBatchReader.from_batches(reader.schema, counted()),
            mode="append",
            storage_options=storage_options or None,
        )
        return written
    stored = table.schema().to_arrow()
    target = _aligned(reader.schema, pa.schema(stored), location)
    source = pa.RecordBatchReader.from_batches(target, _cast(reader, target, location))
    metrics = (
        table.merge(
            source=source,
            predicate=f"t.{KEY} = s.{KEY}",
            source_alias="s",
            target_alias="t",
            merge_schema=True,
        )
        .when_not_matched_insert_all()
        .execute()
    )
    return int(metrics.get("num_target_rows_inserted", 0))


def read_quarantine(project: ProjectConfig, view: str) -> pa.Table | None:
    """The quarantine table of ``view`` as an Arrow table, or ``None`` if nothing was ever
    quarantined."""
    location, options = quarantine_location(project, view)
    table = _table(location, options)
    return None if table is None else table.to_pyarrow_dataset().to_table()


def _table(location: str, storage_options: dict[str, str] | None) -> Any:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(location, storage_options=storage_options or None)
    except TableNotFoundError:
        return None


def _aligned(incoming: pa.Schema, stored: pa.Schema, location: str) -> pa.Schema:
    """``incoming`` with the stored type for columns the table already has."""
    import pyarrow as pa

    fields = []
    for item in incoming:
        index = stored.get_field_index(item.name)
        fields.append(item if index < 0 else pa.field(item.name, stored.field(index).type))
    return pa.schema(fields)


def _cast(reader: pa.RecordBatchReader, target: pa.Schema, location: str) -> Iterator[Any]:
    import pyarrow as pa

    for batch in reader:
        if batch.schema.equals(target):
            yield batch
            continue
        try:
            yield batch.cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            changed = [
                f"{f.name} ({f.type} -> {target.field(f.name).type})"
                for f in batch.schema
                if f.type != target.field(f.name).type
            ]
            raise RunFailed(
                f"the quarantine table {location} stores {', '.join(changed)} with another "
                f"type, and the rows set aside now do not convert: {exc}",
                fix="rename the feature or source column, or move the old quarantine table aside",
            ) from exc
