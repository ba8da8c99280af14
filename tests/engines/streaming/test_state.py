"""Streaming window state against the batch engine, without a broker.

Random events are cut into micro-batches of random sizes, interleaving partitions, each
partition's events arriving in event-time order up to the allowed lateness. Every batch is
folded into :class:`WindowState`, the watermark (minimum over partitions of the newest event
minus the lateness) closes windows, and a last step closes everything. The rows emitted along
the way must be exactly the rows the batch engine computes from all events at once.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.config import parse_config
from headwater.definitions import (
    Avg,
    Count,
    CountDistinct,
    Entity,
    FeatureView,
    FileSource,
    Hopping,
    Last,
    Max,
    Min,
    Sum,
    Tumbling,
)
from headwater.engines.compile import compile_view
from headwater.engines.streaming.state import WindowState
from headwater.stores.registry import Registry, StreamPartition

USER = Entity("user", join_keys=["user_id"])
SOURCE = FileSource("events", path="e.parquet", timestamp_field="ts", created_timestamp_field="cts")
AGGREGATIONS = [
    Sum("amount"),
    Sum("qty"),
    Count(),
    Count("amount", name="amount_count"),
    Avg("amount"),
    Avg("qty"),
    Min("amount"),
    Max("page"),
    CountDistinct("page"),
    Last("page"),
]
WINDOWS = {
    "tumbling": Tumbling("10s"),
    "hopping": Hopping(size="30s", every="10s"),
    "lifetime": None,
}
SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("cts", pa.timestamp("ms", tz="UTC")),
        ("amount", pa.float64()),
        ("qty", pa.int32()),
        ("page", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
    ]
)
PARTITIONS = 3
LATENESS = 5_000


def _view(window: str) -> FeatureView:
    return FeatureView(
        f"v_{window}",
        entity=USER,
        source=SOURCE,
        features=list(AGGREGATIONS),
        window=WINDOWS[window],
    )


def _events(rng: random.Random, n: int, users: int) -> list[dict[str, Any]]:
    """Events per partition in event-time order, shuffled within the allowed lateness."""
    rows: list[dict[str, Any]] = []
    for partition in range(PARTITIONS):
        clock = rng.randrange(-40_000, 40_000)  # pre-epoch times too
        mine = []
        for _ in range(n):
            clock += rng.choice([0, 0, 1, 999, 1_000, 2_500, 9_999, 10_000])
            user = rng.randrange(users) * PARTITIONS + partition  # one partition per entity
            jitter = rng.randrange(0, LATENESS)  # disorder strictly within the lateness
            mine.append(
                {
                    "user_id": user,
                    "ts": clock - jitter,
                    "cts": clock + rng.choice([0, 1, 2]),
                    "amount": None if rng.random() < 0.1 else rng.randrange(-8, 40) / 4,
                    "qty": rng.randrange(0, 5),
                    "page": None if rng.random() < 0.1 else rng.choice("abcde"),
                    "kafka_partition": partition,
                }
            )
        for offset, row in enumerate(mine):
            row["kafka_offset"] = offset
        rows.extend(mine)
    return rows


def _batches(rng: random.Random, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Micro-batches interleaving partitions, each partition's rows in offset order."""
    queues = [[r for r in rows if r["kafka_partition"] == p] for p in range(PARTITIONS)]
    batches = []
    while any(queues):
        batch: list[dict[str, Any]] = []
        for queue in queues:
            take = rng.randrange(0, 12)
            batch += queue[:take]
            del queue[:take]
        batches.append(batch)
    return batches


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _state(
    view: FeatureView, con: duckdb.DuckDBPyConnection | None = None, schema: pa.Schema = SCHEMA
) -> WindowState:
    return WindowState(
        con or duckdb.connect(),
        view,
        schema,
        partition_column="kafka_partition",
        offset_column="kafka_offset",
    )


def _sorted(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: (r["user_id"], r["event_timestamp"]))


def _stream(view: FeatureView, batches: list[list[dict[str, Any]]]) -> tuple[pa.Table, int]:
    con = duckdb.connect()
    state = _state(view, con)
    for p in range(PARTITIONS):
        state.restore(p, None, None)
    max_ts: dict[int, int] = {}
    out = []
    late = 0
    for batch in batches:
        result = state.add(_table(batch))
        late += len(result.late)
        for p, ts in result.max_ts.items():
            max_ts[p] = max(max_ts.get(p, ts), ts)
        if max_ts:
            watermark = min(max_ts.values()) - LATENESS
            out.append(state.close({p: watermark for p in max_ts}))
    out.append(state.close({p: 2**62 for p in range(PARTITIONS)}))
    assert state.rows() == (len(_keys_with_base(con)) if view.window is None else 0)
    return pa.concat_tables(out), late


def _keys_with_base(con: duckdb.DuckDBPyConnection) -> list[Any]:
    return con.sql("SELECT * FROM __hw_state WHERE __ws IS NULL").fetchall()


def _batch(view: FeatureView, rows: list[dict[str, Any]]) -> pa.Table:
    con = duckdb.connect()
    con.register("events", _table(rows))
    return con.sql(compile_view(view, "events", SCHEMA)).to_arrow_table()


@pytest.mark.parametrize("window", list(WINDOWS))
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 60), users=st.integers(1, 4))
def test_streaming_state_gives_the_batch_rows(window: str, seed: int, n: int, users: int) -> None:
    rng = random.Random(seed)
    view = _view(window)
    rows = _events(rng, n, users)
    streamed, late = _stream(view, _batches(rng, rows))
    assert late == 0
    expected = _batch(view, rows)
    assert streamed.schema == expected.schema
    assert _sorted(streamed) == _sorted(expected)


def test_a_window_closes_once_and_late_events_are_reported() -> None:
    view = _view("tumbling")
    state = _state(view)
    state.restore(0, None, None)
    row = {"user_id": 1, "cts": 0, "amount": 1.0, "qty": 1, "page": "a", "kafka_partition": 0}
    state.add(_table([{**row, "ts": 1_000, "kafka_offset": 0}]))
    assert state.close({0: 9_999}).num_rows == 0  # [0, 10s) still open
    closed = state.close({0: 10_000})
    assert closed.column("count").to_pylist() == [1]
    assert closed.column("event_timestamp").to_pylist()[0].timestamp() == 10
    # An event of the closed window is late; one of the next window is not.
    result = state.add(
        _table([{**row, "ts": 9_999, "kafka_offset": 1}, {**row, "ts": 10_000, "kafka_offset": 2}])
    )
    assert result.late == [(0, 1)]
    assert state.close({0: 5_000}).num_rows == 0  # the closed-through time never goes back
    assert state.closed[0] == 10_000
    assert state.close({0: 20_000}).column("count").to_pylist() == [1]


def test_hopping_event_is_late_only_when_all_its_windows_closed() -> None:
    view = _view("hopping")  # 30s every 10s
    state = _state(view)
    state.restore(0, None, None)
    row = {"user_id": 1, "cts": 0, "amount": 1.0, "qty": 1, "page": "a", "kafka_partition": 0}
    state.add(_table([{**row, "ts": 25_000, "kafka_offset": 0}]))
    state.close({0: 30_000})  # [0, 30s) closed; [10s, 40s) and [20s, 50s) open
    result = state.add(_table([{**row, "ts": 15_000, "kafka_offset": 1}]))
    assert result.late == []  # [10s, 40s) still takes it
    out = state.close({0: 60_000})
    counts = dict(
        zip(
            [t.timestamp() for t in out.column("event_timestamp").to_pylist()],
            out.column("count").to_pylist(),
            strict=True,
        )
    )
    assert counts == {40: 2, 50: 1}
    assert state.add(_table([{**row, "ts": 29_999, "kafka_offset": 2}])).late == [(0, 2)]


def _late_run(window: str, unit: str, seed: int, n: int) -> int:
    """Stream events disordered far beyond the lateness, with event times in ``unit``,
    checking that every batch in which :meth:`WindowState.add` finds late events was known to
    hold them beforehand (:meth:`WindowState.may_be_late`); return how many were late."""
    rng = random.Random(seed)
    schema = SCHEMA.set(SCHEMA.get_field_index("ts"), pa.field("ts", pa.timestamp(unit, "UTC")))
    state = _state(_view(window), schema=schema)
    for p in range(PARTITIONS):
        state.restore(p, None, None)
    rows = _events(rng, n, 2)
    for row in rows:
        row["ts"] -= rng.choice([0, 0, 15_000, 40_000])
    late = 0
    max_ts: dict[int, int] = {}
    for batch in _batches(rng, rows):
        in_unit = [
            {
                **r,
                "ts": r["ts"] // 1000
                if unit == "s"
                else r["ts"] * {"ms": 1, "us": 10**3, "ns": 10**6}[unit],
            }
            for r in batch
        ]
        table = pa.Table.from_pylist(in_unit, schema=schema)
        warned = state.may_be_late(table)
        result = state.add(table)
        assert warned or not result.late
        late += len(result.late)
        for p, ts in result.max_ts.items():
            max_ts[p] = max(max_ts.get(p, ts), ts)
        if max_ts:
            state.close({p: min(max_ts.values()) - LATENESS for p in max_ts})
    return late


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 40))
def test_a_batch_with_late_events_is_known_to_hold_them_beforehand(
    window: str, unit: str, seed: int, n: int
) -> None:
    """The worker lets go of a chunk's messages unless ``may_be_late`` says the chunk may hold
    late events: a late event in a chunk it let go would lose its dead letter."""
    _late_run(window, unit, seed, n)


@pytest.mark.parametrize("window", list(WINDOWS))
def test_the_late_event_runs_do_hold_late_events(window: str) -> None:
    assert sum(_late_run(window, "ms", seed, 30) for seed in range(4)) > 0


def test_state_survives_a_snapshot_and_restore() -> None:
    view = _view("lifetime")
    rng = random.Random(7)
    rows = _events(rng, 40, 3)
    batches = _batches(rng, rows)
    half = len(batches) // 2
    state = _state(view)
    for p in range(PARTITIONS):
        state.restore(p, None, None)
    out = []
    max_ts: dict[int, int] = {}
    for batch in batches[:half]:
        for p, ts in state.add(_table(batch)).max_ts.items():
            max_ts[p] = max(max_ts.get(p, ts), ts)
        out.append(state.close({p: min(max_ts.values()) - LATENESS for p in max_ts}))
    saved = {p: (state.snapshot(p), state.closed.get(p)) for p in range(PARTITIONS)}
    # A new worker (new connection) takes the partitions over.
    state2 = _state(view)
    for p, (blob, closed) in saved.items():
        state2.restore(p, blob, closed)
    for batch in batches[half:]:
        for p, ts in state2.add(_table(batch)).max_ts.items():
            max_ts[p] = max(max_ts.get(p, ts), ts)
        out.append(state2.close({p: min(max_ts.values()) - LATENESS for p in max_ts}))
    out.append(state2.close({p: 2**62 for p in range(PARTITIONS)}))
    assert _sorted(pa.concat_tables(out)) == _sorted(_batch(view, rows))


def _save(
    registry: Registry, state: WindowState, saved: dict[int, int | None], offset: int
) -> None:
    """Commit every partition's checkpoint as the worker does (offsets just count batches)."""
    updates = []
    points = state.checkpoints(list(range(PARTITIONS)))
    for p in range(PARTITIONS):
        point = points[p]
        assert point == state.checkpoint(p)  # one read for all, or one per partition: alike
        closed = state.closed.get(p)
        part = StreamPartition(
            p,
            offset,
            {"closed": closed},
            point.state,
            piece=point.piece,
            piece_end=point.piece_end,
            prune_through=closed,
        )
        updates.append((saved.get(p), part))
    registry.commit_stream("v", "t", updates)
    state.saved(list(range(PARTITIONS)))
    for p in range(PARTITIONS):
        saved[p] = offset


@pytest.mark.parametrize("window", ["tumbling", "hopping"])
@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 50), users=st.integers(1, 4))
def test_state_saved_in_pieces_restores_to_the_same_rows(
    window: str, seed: int, n: int, users: int
) -> None:
    rng = random.Random(seed)
    view = _view(window)
    rows = _events(rng, n, users)
    batches = _batches(rng, rows)
    cut = rng.randrange(len(batches) + 1)
    merge_at = rng.randrange(len(batches) + 1)
    with tempfile.TemporaryDirectory() as folder:
        project = parse_config(
            {"project": "t", "registry": {"type": "sqlite", "path": "registry.db"}}, Path(folder)
        )
        with Registry.open(project) as registry:
            state = _state(view)
            for p in range(PARTITIONS):
                state.restore(p, None, None)
            saved: dict[int, int | None] = {}
            max_ts: dict[int, int] = {}
            out = []
            for number, batch in enumerate(batches, start=1):
                if number - 1 == cut:  # a new worker takes over from the last commit
                    found = registry.stream_partitions("v", "t", list(range(PARTITIONS)))
                    state = _state(view)
                    for p in range(PARTITIONS):
                        got = found.get(p)
                        if got is None:
                            state.restore(p, None, None)
                        else:
                            state.restore(p, got.state, got.meta["closed"], got.pieces)
                for p, ts in state.add(_table(batch)).max_ts.items():
                    max_ts[p] = max(max_ts.get(p, ts), ts)
                if number == merge_at:
                    state.compact()  # the next save is a whole snapshot
                out.append(state.close({p: min(max_ts.values()) - LATENESS for p in max_ts}))
                _save(registry, state, saved, number)
            out.append(state.close({p: 2**62 for p in range(PARTITIONS)}))
            _save(registry, state, saved, len(batches) + 1)
            # Every piece's windows closed: the pruning left none.
            left = registry.stream_partitions("v", "t", list(range(PARTITIONS)))
            assert all(not part.pieces for part in left.values())
    assert _sorted(pa.concat_tables(out)) == _sorted(_batch(view, rows))
