"""Checkpoints of streaming views, without a broker: the fenced commit of offsets and window
state, restoring it, and the fingerprint that refuses a state a changed view cannot read.
Against the real registries (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from headwater.config import parse_config
from headwater.definitions import Count, Entity, FeatureView, FileSource, Sum, Tumbling
from headwater.engines.streaming.checkpoint import (
    Checkpoints,
    fingerprint,
    load_schema,
    save_schema,
)
from headwater.engines.streaming.state import WindowState
from headwater.engines.streaming.watermarks import Watermarks
from headwater.errors import DefinitionError
from headwater.stores.registry import Registry

SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("amount", pa.float64()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
    ]
)
USER = Entity("user", join_keys=["user_id"])
SOURCE = FileSource("events", path="e.parquet", timestamp_field="ts")
TOPIC = "clicks"


def _view(window: str = "10s") -> FeatureView:
    return FeatureView(
        "v",
        entity=USER,
        source=SOURCE,
        features=[Count(), Sum("amount")],
        window=Tumbling(window),
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "sqlite":
        config = {"type": "sqlite", "path": "registry.db"}
    else:
        config = {"type": "postgres", "dsn": request.getfixturevalue("pg_dsn")}
    with Registry.open(parse_config({"project": "t", "registry": config}, tmp_path)) as opened:
        yield opened


def _state(view: FeatureView) -> WindowState:
    return WindowState(
        duckdb.connect(),
        view,
        SCHEMA,
        partition_column="kafka_partition",
        offset_column="kafka_offset",
    )


def _events(partition: int, first_offset: int, *rows: tuple[int, int, float]) -> pa.Table:
    """Events (user_id, ts ms, amount) of one partition from ``first_offset`` on."""
    return pa.Table.from_pylist(
        [
            {
                "user_id": user,
                "ts": ts,
                "amount": amount,
                "kafka_partition": partition,
                "kafka_offset": first_offset + i,
            }
            for i, (user, ts, amount) in enumerate(rows)
        ],
        schema=SCHEMA,
    )


def _worker(view: FeatureView) -> tuple[Watermarks, WindowState]:
    clock = Watermarks(0, 30.0)
    state = _state(view)
    for partition in (0, 1):
        clock.own(partition, None, None, 0.0)
        state.restore(partition, None, None)
    return clock, state


def _fold(clock: Watermarks, state: WindowState, events: pa.Table) -> None:
    partition = events.column("kafka_partition")[0].as_py()
    clock.consumed({partition: events.column("kafka_offset")[-1].as_py()})
    clock.observe(state.add(events).max_ts, now=1.0)


def test_commit_saves_dirty_partitions_and_a_new_worker_resumes_from_it(
    registry: Registry,
) -> None:
    view = _view()
    mark = fingerprint(view, SCHEMA)
    checkpoints = Checkpoints(registry, view.name, TOPIC)
    clock, state = _worker(view)
    _fold(clock, state, _events(0, 0, (1, 1_000, 2.0), (1, 2_000, 3.0), (2, 15_000, 1.0)))
    assert checkpoints.commit(clock.partitions, state, fingerprint=mark, run_id="r1").saved == {
        0: 3
    }  # partition 1 took nothing: not dirty, not saved
    assert not clock.partitions[0].dirty
    assert clock.partitions[0].expected == 3
    assert checkpoints.commit(clock.partitions, state, fingerprint=mark, run_id="r1").saved == {}

    # Another worker takes partition 0 over: same offset, same newest event, same windows.
    saved = checkpoints.load([0, 1])
    assert list(saved) == [0]
    assert saved[0].next_offset == 3
    assert saved[0].meta == {"max_ts": 15_000, "closed": None, "fingerprint": mark, "run_id": "r1"}
    taken = _state(view)
    checkpoints.restore(taken, 0, saved[0], mark)
    _, closing = clock.closing(2.0, state.closed)
    expected = state.close(closing)
    assert expected.num_rows == 1  # the window [0 s, 10 s) of user 1 closed at 15 s
    assert taken.close(closing).to_pylist() == expected.to_pylist()


def test_a_commit_over_another_workers_commit_is_refused_whole(registry: Registry) -> None:
    view = _view()
    mark = fingerprint(view, SCHEMA)
    checkpoints = Checkpoints(registry, view.name, TOPIC)
    first, first_state = _worker(view)
    second, second_state = _worker(view)
    _fold(first, first_state, _events(0, 0, (1, 1_000, 2.0)))
    assert checkpoints.commit(first.partitions, first_state, fingerprint=mark, run_id="a").saved
    # The second worker still believes partition 0 was never committed; partition 1 is fine.
    _fold(second, second_state, _events(0, 0, (1, 1_000, 2.0), (1, 1_500, 9.0)))
    _fold(second, second_state, _events(1, 0, (3, 1_000, 1.0)))
    refused = checkpoints.commit(second.partitions, second_state, fingerprint=mark, run_id="b")
    assert sorted(refused.refused) == [0, 1]
    assert "partition 0" in refused.reason
    assert refused.saved == {}
    saved = checkpoints.load([0, 1])
    assert list(saved) == [0]  # nothing of the refused transaction was kept
    assert (saved[0].next_offset, saved[0].meta["run_id"]) == (1, "a")
    assert second.partitions[0].dirty  # still to be committed, after reloading


def test_a_state_saved_by_another_definition_is_refused_with_the_fix(registry: Registry) -> None:
    view = _view()
    checkpoints = Checkpoints(registry, view.name, TOPIC)
    clock, state = _worker(view)
    _fold(clock, state, _events(0, 0, (1, 1_000, 2.0)))
    checkpoints.commit(clock.partitions, state, fingerprint=fingerprint(view, SCHEMA), run_id="r")
    changed = _view("1m")
    with pytest.raises(DefinitionError) as error:
        checkpoints.restore(
            _state(changed), 0, checkpoints.load([0])[0], fingerprint(changed, SCHEMA)
        )
    assert "changed" in error.value.message
    assert "headwater stream --reset v" in (error.value.fix or "")


def test_fingerprint_follows_what_the_state_depends_on() -> None:
    view = _view()
    assert fingerprint(view, SCHEMA) == fingerprint(_view(), SCHEMA)
    assert fingerprint(view, SCHEMA) != fingerprint(_view("1m"), SCHEMA)
    wider = SCHEMA.append(pa.field("page", pa.string()))
    assert fingerprint(view, SCHEMA) != fingerprint(view, wider)


def test_the_decoded_schema_is_kept_for_the_next_worker(registry: Registry) -> None:
    assert load_schema(registry, "v") is None
    save_schema(registry, "v", SCHEMA)
    assert load_schema(registry, "v") == SCHEMA
