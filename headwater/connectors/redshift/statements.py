"""The SQL text the Redshift sink sends: pure functions, tested against golden strings.

Identifiers are double-quoted (quotes doubled). ``COPY`` cannot take bound parameters, so its
S3 prefix and IAM role are literals; both are checked by :class:`~headwater.definitions.
RedshiftSink` (no quotes or backslashes can reach here) and :func:`literal` refuses them again.
Values of the state table are ``%s`` placeholders bound by the driver.
"""

from __future__ import annotations

from collections.abc import Sequence

from headwater.connectors.sinks.base import STAGE_TABLE, SinkError
from headwater.sql import quote_ident as q

STAGE = q(STAGE_TABLE)
Statement = tuple[str, tuple[object, ...]]
"""A statement and the values bound to its ``%s`` placeholders."""


def literal(text: str) -> str:
    """``text`` as a string literal; quotes and backslashes are refused, not escaped."""
    if "'" in text or "\\" in text or "\x00" in text:
        raise SinkError(
            f"{text!r} cannot be written into a Redshift COPY statement",
            fix="remove quotes and backslashes from s3_staging / iam_role",
        )
    return f"'{text}'"


def table_ref(schema: str | None, table: str) -> str:
    """``"schema"."table"`` (or ``"table"`` on the search path)."""
    return f"{q(schema)}.{q(table)}" if schema else q(table)


def build_create_table_sql(
    target: str, columns: Sequence[tuple[str, str]], keys: Sequence[str] | None
) -> str:
    """``CREATE TABLE`` with the columns; ``keys`` become an (informational) primary key."""
    parts = [f"{q(name)} {kind}" for name, kind in columns]
    if keys:
        parts.append(f"PRIMARY KEY ({', '.join(q(k) for k in keys)})")
    return f"CREATE TABLE {target} ({', '.join(parts)})"


def build_add_column_sql(target: str, name: str, kind: str) -> str:
    """Add one column (Redshift adds one per statement)."""
    return f"ALTER TABLE {target} ADD COLUMN {q(name)} {kind}"


def build_state_table_sql(state: str) -> str:
    """The table holding each (target table, view)'s last loaded write sequence."""
    return (
        f"CREATE TABLE IF NOT EXISTS {state} (target_table VARCHAR(256) NOT NULL, "
        "view_name VARCHAR(256) NOT NULL, last_seq BIGINT NOT NULL, run_id VARCHAR(64), "
        "updated_at TIMESTAMP NOT NULL, PRIMARY KEY (target_table, view_name))"
    )


def build_stage_sql(columns: Sequence[tuple[str, str]]) -> str:
    """The temporary staging table: the rows' columns in Parquet order (COPY maps by position)."""
    return f"CREATE TEMP TABLE {STAGE} ({', '.join(f'{q(n)} {k}' for n, k in columns)})"


def build_copy_sql(s3_prefix: str, iam_role: str) -> str:
    """Load every Parquet file under ``s3_prefix`` into the staging table."""
    return f"COPY {STAGE} FROM {literal(s3_prefix)} IAM_ROLE {literal(iam_role)} FORMAT AS PARQUET"


def build_merge_sql(target: str, names: Sequence[str], keys: Sequence[str]) -> str:
    """Upsert the staged rows into ``target`` on ``keys``."""
    on = " AND ".join(f"{target}.{q(k)} = {STAGE}.{q(k)}" for k in keys)
    values = [n for n in names if n not in keys] or list(keys)
    update = ", ".join(f"{q(n)} = {STAGE}.{q(n)}" for n in values)
    columns = ", ".join(q(n) for n in names)
    staged = ", ".join(f"{STAGE}.{q(n)}" for n in names)
    return (
        f"MERGE INTO {target} USING {STAGE} ON {on} "
        f"WHEN MATCHED THEN UPDATE SET {update} "
        f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({staged})"
    )


def build_insert_sql(target: str, names: Sequence[str]) -> str:
    """Insert every staged row into ``target``."""
    columns = ", ".join(q(n) for n in names)
    return f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {STAGE}"


def build_state_sql(state: str, *, table: str, view: str, seq: int, run_id: str) -> list[Statement]:
    """Record ``seq`` as the last loaded sequence of (table, view)."""
    return [
        (f"DELETE FROM {state} WHERE target_table = %s AND view_name = %s", (table, view)),
        (
            f"INSERT INTO {state} (target_table, view_name, last_seq, run_id, updated_at) "
            "VALUES (%s, %s, %s, %s, GETDATE())",
            (table, view, seq, run_id),
        ),
    ]


def build_load_sql(
    mode: str,
    *,
    target: str,
    columns: Sequence[tuple[str, str]],
    keys: Sequence[str],
    s3_prefix: str | None,
    iam_role: str,
) -> list[str]:
    """The statements of one load transaction, before the state update.

    ``s3_prefix`` is ``None`` when no rows were staged: nothing is copied, and only ``replace``
    does anything (it empties the table). ``replace`` deletes after the copy, so the table is
    locked only while it is rewritten.
    """
    names = [n for n, _ in columns]
    clear = [f"DELETE FROM {target}"] if mode == "replace" else []
    if s3_prefix is None:
        return clear
    apply = (
        build_merge_sql(target, names, keys)
        if mode == "upsert"
        else build_insert_sql(target, names)
    )
    return [
        build_stage_sql(columns),
        build_copy_sql(s3_prefix, iam_role),
        *clear,
        apply,
        f"DROP TABLE {STAGE}",
    ]
