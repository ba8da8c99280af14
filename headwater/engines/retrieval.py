"""Point-in-time correct training sets (the semantics of Feast's ``get_historical_features``).

For each entity row at time ``t`` and each view, the joined feature row is the one with the
greatest ``event_timestamp`` such that ``event_timestamp <= t`` and, when the view has a ttl,
``event_timestamp >= t - ttl`` (both inclusive). Offline tables hold one row per
(keys, event_timestamp) whose created timestamp already won, so no further tie exists. Entity
rows without a match keep nulls; duplicate entity rows are all kept, in their input order. The
join runs in DuckDB as ``ASOF LEFT JOIN``: history is scanned, never loaded into Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.engines.windows import floormod_sql
from headwater.errors import DefinitionError, HeadwaterError
from headwater.sql import quote_ident as q

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as pads

    from headwater.definitions import FeatureView

ROW_ID = "__hw_row"
ENTITY_TS = "__hw_entity_ts"


def point_in_time_join(
    con: duckdb.DuckDBPyConnection,
    entity_table: pa.Table,
    requests: list[tuple[FeatureView, list[str], pads.Dataset | None, pa.Schema]],
    *,
    full_feature_names: bool,
    timestamp_column: str = "event_timestamp",
    order: list[tuple[str, str]] | None = None,
) -> pa.Table:
    """Join the requested features of each view onto ``entity_table`` as of each row's time.

    ``requests`` holds ``(view, feature names, offline dataset or None, view output schema)``;
    feature columns follow ``order`` (``(view, feature)`` pairs) when given.
    """
    import pyarrow as pa

    if timestamp_column not in entity_table.column_names:
        raise DefinitionError(
            f"the entity dataframe has no {timestamp_column!r} column "
            f"(columns: {', '.join(entity_table.column_names)})",
            fix="add the time at which each row's features are wanted as event_timestamp",
        )
    entity = entity_table.append_column(ROW_ID, pa.array(range(entity_table.num_rows), pa.int64()))
    con.register("__hw_entities", entity)
    select = [f"e.{q(c)}" for c in entity_table.column_names]
    feature_columns: dict[tuple[str, str], str] = {}
    joins = []
    taken = set(entity_table.column_names)
    for index, (view, features, dataset, schema) in enumerate(requests):
        missing = [k for k in view.join_keys if k not in entity_table.column_names]
        if missing:
            raise DefinitionError(
                f"the entity dataframe lacks join key {missing[0]!r} of view {view.name!r}",
                fix=f"add a column {missing[0]!r}",
            )
        alias = f"f{index}"
        relation = f"__hw_view_{index}"
        if dataset is None:
            con.register(relation, schema.empty_table())
        else:
            con.register(relation, dataset)
        cols = ", ".join(
            [*(q(k) for k in view.join_keys), "event_timestamp", *(q(f) for f in features)]
        )
        on = " AND ".join(
            [f"e.{q(k)} = {alias}.{q(k)}" for k in view.join_keys]
            + [f"e.{ENTITY_TS} >= {alias}.event_timestamp"]
        )
        joins.append(f"ASOF LEFT JOIN (SELECT {cols} FROM {relation}) AS {alias} ON {on}")
        for feature in features:
            out = f"{view.name}__{feature}" if full_feature_names else feature
            if out in taken:
                raise DefinitionError(
                    f"feature name {out!r} appears twice in the result",
                    fix="pass full_feature_names=True to prefix each feature with its view",
                )
            taken.add(out)
            value = f"{alias}.{q(feature)}"
            if view.ttl_ms is not None:
                value = (
                    f"CASE WHEN {alias}.event_timestamp >= e.{ENTITY_TS} - "
                    f"to_milliseconds({view.ttl_ms}) THEN {value} END"
                )
            feature_columns[(view.name, feature)] = f"{value} AS {q(out)}"
    select += [feature_columns[key] for key in (order or list(feature_columns))]
    entity_ts = _entity_time_sql(timestamp_column, entity_table.schema.field(timestamp_column).type)
    sql = (
        f"SELECT {', '.join(select)} FROM (SELECT *, {entity_ts} "
        f"AS {ENTITY_TS} FROM __hw_entities) AS e {' '.join(joins)} ORDER BY e.{ROW_ID}"
    )
    return con.sql(sql).to_arrow_table()


def _entity_time_sql(column: str, arrow_type: pa.DataType) -> str:
    """An entity row's time as a ``TIMESTAMPTZ`` (microseconds): a nanosecond time is rounded
    down (DuckDB's cast rounds to the nearest microsecond, which can move it later, onto a
    feature row after it)."""
    import pyarrow as pa

    if pa.types.is_timestamp(arrow_type) and arrow_type.unit == "ns":
        ns = f"epoch_ns({q(column)})"
        return f"make_timestamptz((({ns}) - {floormod_sql(ns, 1000)}) // 1000)"
    return f"CAST({q(column)} AS TIMESTAMPTZ)"


# ---------------------------------------------------------------------- feature references
def resolve_refs(refs: list[str], views: dict[str, FeatureView]) -> list[tuple[str, str]]:
    """``(view, feature)`` pairs for ``"view:feature"`` strings, in order, checking every name;
    ``"view:*"`` expands to all of the view's features."""
    resolved: list[tuple[str, str]] = []
    for ref in refs:
        view_name, sep, feature = ref.partition(":")
        if not sep or not view_name or not feature:
            raise DefinitionError(
                f"feature reference {ref!r} is not of the form 'view:feature'",
                fix="write e.g. 'user_orders_daily:amount_sum'",
            )
        view = views.get(view_name)
        if view is None:
            raise DefinitionError(
                f"feature reference {ref!r}: no feature view named {view_name!r}",
                fix=f"use one of: {', '.join(sorted(views)) or 'none (run headwater apply)'}",
            )
        if feature == "*":
            resolved.extend((view_name, name) for name in view.feature_names)
            continue
        if feature not in view.feature_names:
            raise DefinitionError(
                f"feature reference {ref!r}: view {view_name!r} has no feature {feature!r}",
                fix=f"use one of: {', '.join(view.feature_names)}",
            )
        resolved.append((view_name, feature))
    return resolved


def parse_refs(refs: list[str], views: dict[str, FeatureView]) -> dict[str, list[str]]:
    """Group ``"view:feature"`` strings by view, checking every name (order kept)."""
    grouped: dict[str, list[str]] = {}
    for view_name, feature in resolve_refs(refs, views):
        grouped.setdefault(view_name, []).append(feature)
    return grouped


class OnlineResponse:
    """Online feature values: one row per requested entity, columns keys then features."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def to_arrow(self) -> pa.Table:
        return self._table

    def to_dict(self) -> dict[str, list[object]]:
        result: dict[str, list[object]] = self._table.to_pydict()
        return result

    def to_pandas(self) -> object:
        return _to_pandas(self._table)

    def __repr__(self) -> str:
        return f"OnlineResponse({self._table.num_rows} rows, {self._table.column_names})"


class RetrievalJob:
    """A point-in-time training set; computed once, then converted on demand."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def to_arrow(self) -> pa.Table:
        return self._table

    def to_pandas(self) -> object:
        return _to_pandas(self._table)

    def to_polars(self) -> object:
        try:
            import polars as pl
        except ModuleNotFoundError:
            raise HeadwaterError(
                "to_polars() needs polars, which is not installed",
                fix="pip install polars, or use .to_arrow()",
            ) from None
        return pl.from_arrow(self._table)

    def __repr__(self) -> str:
        return f"RetrievalJob({self._table.num_rows} rows, {self._table.column_names})"


def to_arrow_table(data: object) -> pa.Table:
    """Accept a pyarrow Table, a pandas or polars DataFrame, or a dict of columns."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, dict):
        return pa.table(data)
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()  # type: ignore[attr-defined]  # a polars DataFrame
    raise DefinitionError(
        f"cannot read an entity dataframe of type {type(data).__name__}",
        fix="pass a pandas or polars DataFrame, a pyarrow Table or a dict of columns",
    )


def _to_pandas(table: pa.Table) -> object:
    """``table`` as a pandas DataFrame; pandas is not a dependency of headwater."""
    try:
        import pandas  # noqa: F401  (only to tell a missing pandas from another error)
    except ModuleNotFoundError:
        raise HeadwaterError(
            "to_pandas() needs pandas, which is not installed",
            fix="pip install pandas, or use .to_arrow()",
        ) from None
    return table.to_pandas()
