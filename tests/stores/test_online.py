"""The online stores: the same behaviour asserted on SQLite and on a real Redis server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import SecretStr

from headwater.config import ProjectConfig
from headwater.definitions import Entity, FeatureView, FileSource
from headwater.errors import ConnectionFailed, HeadwaterError
from headwater.stores.online import open_online_store
from headwater.stores.online.base import OnlineStore
from headwater.stores.online.codec import (
    decode_payloads,
    deserialize_schema,
    encode_key,
    encode_keys,
    encode_payloads,
)
from headwater.stores.online.redis import RedisOnlineStore
from headwater.stores.online.redis import RedisOnlineStoreConfig as RedisConfig
from headwater.stores.online.sqlite import SqliteOnlineStore
from headwater.stores.online.sqlite import SqliteOnlineStoreConfig as SqliteConfig

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
USER = Entity("user", join_keys=["user_id"])


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def make_view(
    name: str = "v",
    *,
    entity: Entity = USER,
    features: tuple[str, ...] = ("a",),
    ttl: timedelta | None = None,
    created: bool = False,
) -> FeatureView:
    source = FileSource(
        "s",
        path="x.parquet",
        timestamp_field="ts",
        created_timestamp_field="cts" if created else None,
    )
    return FeatureView(
        name, entity=entity, source=source, features={f: f for f in features}, ttl=ttl
    )


def rows(
    user_ids: list[Any],
    times: list[datetime],
    a: list[Any],
    *,
    created: list[datetime | None] | None = None,
    a_type: pa.DataType | None = None,
) -> pa.Table:
    data: dict[str, pa.Array] = {
        "user_id": pa.array(user_ids, pa.int64()),
        "event_timestamp": pa.array(times, TS),
        "a": pa.array(a, a_type),
    }
    if created is not None:
        data["created_timestamp"] = pa.array(created, TS)
    return pa.table(data)


def value(store: OnlineStore, view: FeatureView, key: Any) -> Any:
    row = store.read(view, [(key,)])[0]
    return None if row is None else row.values["a"]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    project = ProjectConfig(project="shop", root=tmp_path)
    opened: OnlineStore
    if request.param == "sqlite":
        opened = SqliteOnlineStore(SqliteConfig(path="data/online.db"), project)
    else:
        config = RedisConfig(
            url=SecretStr(request.getfixturevalue("redis_url")),
            key_prefix=request.getfixturevalue("redis_prefix"),
            batch_size=300,
        )
        opened = RedisOnlineStore(config, project)
    yield opened
    opened.close()


# ------------------------------------------------------------------ types
def test_round_trip_of_common_types(store: OnlineStore) -> None:
    features = ("i", "f", "s", "b", "n", "t", "d", "dec", "l")
    view = make_view(features=features)
    table = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "event_timestamp": pa.array([T0, T0], TS),
            "i": pa.array([-(2**62), None], pa.int64()),
            "f": pa.array([0.1 + 0.2, float("inf")], pa.float64()),
            "s": pa.array(['héllo "quoted" \\ \n', None], pa.string()),
            "b": pa.array([True, False], pa.bool_()),
            "n": pa.array([None, None], pa.int64()),
            "t": pa.array([datetime(2020, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), None], TS),
            "d": pa.array([date(1969, 12, 31), date(2024, 2, 29)], pa.date32()),
            "dec": pa.array([Decimal("-12345.678"), None], pa.decimal128(12, 3)),
            "l": pa.array([[1, None, 3], []], pa.list_(pa.int64())),
        }
    )
    assert store.write(view, table) == 2
    got = store.read(view, [(1,), (2,)])
    expected = table.select(list(features)).to_pylist()
    assert [r.values if r else None for r in got] == expected
    assert got[0] is not None and got[0].event_ts_ms == ms(T0)
    assert got[0].created_ts_ms is None
    assert type(got[0].values["dec"]) is Decimal
    assert got[0].values["t"].utcoffset() == timedelta(0)


def test_round_trip_of_nested_and_rarer_types(store: OnlineStore) -> None:
    point = pa.struct([("x", pa.int32()), ("at", pa.list_(TS))])
    columns = {
        "bin": pa.array([b"\x00\xff raw"], pa.binary()),
        "f32": pa.array([1.5], pa.float32()),
        "cat": pa.array(["red"]).dictionary_encode(),
        "pt": pa.array([{"x": 3, "at": [T0]}], point),
        "m": pa.array([[("k", date(2024, 1, 2))]], pa.map_(pa.string(), pa.date32())),
        "dur": pa.array([timedelta(seconds=90)], pa.duration("ms")),
        "bins": pa.array([[b"a", None]], pa.list_(pa.large_binary())),
    }
    view = make_view(features=tuple(columns))
    table = pa.table(
        {"user_id": pa.array([1], pa.int64()), "event_timestamp": pa.array([T0], TS), **columns}
    )
    store.write(view, table)
    row = store.read(view, [(1,)])[0]
    assert row is not None
    assert row.values == table.select(list(columns)).to_pylist()[0]


def test_codec_decodes_each_payload_with_its_own_schema() -> None:
    sid_int, schema_int, payloads_int = encode_payloads(pa.table({"a": pa.array([7], pa.int64())}))
    sid_str, schema_str, payloads_str = encode_payloads(pa.table({"a": pa.array(["x"])}))
    assert sid_int != sid_str
    schemas = {sid_int: deserialize_schema(schema_int), sid_str: deserialize_schema(schema_str)}
    decoded = decode_payloads([payloads_str[0], payloads_int[0]], schemas)
    assert decoded == [{"a": "x"}, {"a": 7}]


def test_vectorised_keys_match_the_per_row_encoding() -> None:
    texts = ["plain", 'q"uote', "back\\slash", "ünï😀", "", None, "new\nline"]
    table = pa.table(
        {
            "i": pa.array([-(2**63), 0, None, 7, 2**63 - 1, 1, 2], pa.int64()),
            "s": pa.array(texts, pa.large_string()),
            "u": pa.array([2**64 - 1, 0, 1, 2, 3, 4, 5], pa.uint64()),
        }
    )
    for keys in (["i"], ["i", "u"], ["s", "i"], ["u", "s"]):
        clean = table.slice(0, 6)  # the last string has a control character: per-row path
        for part in (clean, table):
            expected = [
                encode_key(k) for k in zip(*(part.column(c).to_pylist() for c in keys), strict=True)
            ]
            assert encode_keys(part, keys) == expected


def test_payloads_built_in_sql_decode_to_the_values_the_python_encoder_keeps() -> None:
    # Flat rows are encoded by DuckDB; a nested column sends the table down the per-row path.
    flat = pa.table(
        {
            "f": pa.array([-0.0, float("nan"), float("inf"), 1 / 3, None, 2.5e-300], pa.float64()),
            "g": pa.array([0.1, -0.0, None, 3.4e38, 1.5, float("-inf")], pa.float32()),
            "i": pa.array([-(2**63), None, 0, 2**63 - 1, 7, -1], pa.int64()),
            "u": pa.array([2**64 - 1, 0, None, 1, 2, 3], pa.uint64()),
            "b": pa.array([True, None, False, True, False, None]),
            "s": pa.array(['q"uote', "back\\slash", "ünï😀", "\x01ctl", None, "new\nline"]),
            # Sent as text and integers: cast before they are encoded.
            "d": pa.array(
                [Decimal("1.50"), None, Decimal("-0.01"), Decimal("0"), Decimal("9.99"), None],
                pa.decimal128(10, 2),
            ),
            "t": pa.array(
                [datetime(2024, 1, 1, tzinfo=UTC), None] + [datetime(1969, 12, 31, tzinfo=UTC)] * 4,
                pa.timestamp("us", tz="UTC"),
            ),
            "day": pa.array([date(2024, 2, 29), None, date(1970, 1, 1)] * 2, pa.date32()),
        }
    )
    nested = flat.append_column("l", pa.array([[1], None, [], [2, 3], [4], [5]]))
    for table in (flat, nested):
        sid, schema, payloads = encode_payloads(table)
        decoded = decode_payloads(payloads, {sid: deserialize_schema(schema)})
        expected = table.to_pylist()
        assert len(decoded) == len(expected)
        for got, want in zip(decoded, expected, strict=True):
            for name, value in want.items():
                if isinstance(value, float) and value != value:  # NaN
                    assert got[name] != got[name]
                else:
                    assert got.get(name) == value, name
                    if isinstance(value, float):  # the sign of zero survives too
                        assert str(got[name]) == str(value)


def test_rows_written_before_a_type_change_keep_their_type(store: OnlineStore) -> None:
    view = make_view()
    store.write(view, rows([1], [T0], [41]))
    store.write(view, rows([2], [T0], ["forty-two"]))
    assert value(store, view, 1) == 41
    assert value(store, view, 2) == "forty-two"


def test_millisecond_input_timestamps(store: OnlineStore) -> None:
    view = make_view()
    table = pa.table(
        {
            "user_id": pa.array([1], pa.int64()),
            "event_timestamp": pa.array([T0], pa.timestamp("ms", tz="UTC")),
            "a": pa.array([1]),
        }
    )
    store.write(view, table)
    row = store.read(view, [(1,)])[0]
    assert row is not None and row.event_ts_ms == ms(T0)


# ------------------------------------------------------------------ the latest-row rule
@pytest.mark.parametrize("newest_first", [True, False])
def test_latest_event_timestamp_wins_in_any_write_order(
    store: OnlineStore, newest_first: bool
) -> None:
    view = make_view()
    old, new = rows([1], [T0], ["old"]), rows([1], [T0 + timedelta(seconds=1)], ["new"])
    first, second = (new, old) if newest_first else (old, new)
    assert store.write(view, first) == 1
    assert store.write(view, second) == (0 if newest_first else 1)
    row = store.read(view, [(1,)])[0]
    assert row is not None
    assert (row.values["a"], row.event_ts_ms) == ("new", ms(T0) + 1000)


def test_same_timestamp_is_decided_by_created_timestamp(store: OnlineStore) -> None:
    view = make_view(created=True)

    def write(a: str, created: datetime) -> int:
        return store.write(view, rows([1], [T0], [a], created=[created]))

    assert write("first", T0) == 1
    assert write("later", T0 + timedelta(minutes=2)) == 1
    assert write("stale", T0 + timedelta(minutes=1)) == 0
    assert value(store, view, 1) == "later"
    assert write("equal", T0 + timedelta(minutes=2)) == 1
    row = store.read(view, [(1,)])[0]
    assert row is not None and row.values["a"] == "equal"
    assert row.created_ts_ms == ms(T0) + 120_000


def test_same_timestamp_without_created_timestamp_is_a_correction(store: OnlineStore) -> None:
    view = make_view()
    store.write(view, rows([1], [T0], ["wrong"]))
    assert store.write(view, rows([1], [T0], ["right"])) == 1
    assert value(store, view, 1) == "right"


def test_only_the_latest_row_of_a_batch_is_stored(store: OnlineStore) -> None:
    view = make_view(created=True)
    t1, t2, t3 = T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    table = rows(
        [1, 1, 1, 2, 2, 3, 3, 4, 4],
        [t1, t3, t2, t2, t1, t1, t1, t1, t1],
        ["1a", "1c", "1b", "2b", "2a", "3-hi", "3-lo", "4-first", "4-second"],
        created=[None, None, None, None, None, t2, t1, None, None],
    )
    assert store.write(view, table) == 4
    got = store.read(view, [(1,), (2,), (3,), (4,)])
    assert [r.values["a"] if r else None for r in got] == ["1c", "2b", "3-hi", "4-second"]


# ------------------------------------------------------------------ keys and reads
def test_multi_column_join_keys(store: OnlineStore) -> None:
    entity = Entity("store_user", join_keys=["store_id", "user_id"])
    view = make_view(entity=entity)
    table = pa.table(
        {
            "store_id": pa.array([1, 1, 2]),
            "user_id": pa.array(["a", "b", "a"]),
            "event_timestamp": pa.array([T0] * 3, TS),
            "a": pa.array([10, 20, 30]),
        }
    )
    assert store.write(view, table) == 3
    got = store.read(view, [(2, "a"), (1, "b"), (2, "b"), (1, "a")])
    assert [r.values["a"] if r else None for r in got] == [30, 20, None, 10]


def test_missing_entities_and_views_read_as_none(store: OnlineStore) -> None:
    view = make_view()
    assert store.read(view, [(1,), (2,)]) == [None, None]
    store.write(view, rows([1], [T0], [5]))
    assert store.read(view, [(2,), (1,), (2,)])[0] is None
    assert [value(store, view, k) for k in (1, 2)] == [5, None]
    assert store.read(view, []) == []


def test_delete_view_removes_only_that_view(store: OnlineStore) -> None:
    views = [make_view(name) for name in ("v", "v2", "vv", "v_x")]
    for view in views:
        store.write(view, rows([1, 2], [T0, T0], [view.name, view.name]))
    store.delete_view("v")
    assert store.read(views[0], [(1,), (2,)]) == [None, None]
    for view in views[1:]:
        assert value(store, view, 2) == view.name
    store.write(views[0], rows([1], [T0], ["again"]))
    assert value(store, views[0], 1) == "again"


def test_ten_thousand_entities_in_one_batch(store: OnlineStore) -> None:
    view = make_view(features=("a", "b"))
    n = 10_000
    table = pa.table(
        {
            "user_id": pa.array(range(n), pa.int64()),
            "event_timestamp": pa.array([T0] * n, TS),
            "a": pa.array(range(n), pa.int64()),
            "b": pa.array([f"s{i}" for i in range(n)]),
        }
    )
    assert store.write(view, table) == n
    got = store.read(view, [(i,) for i in range(n)])
    assert all(r is not None and r.values == {"a": i, "b": f"s{i}"} for i, r in enumerate(got))


def test_bad_rows_are_rejected(store: OnlineStore) -> None:
    view = make_view()
    with pytest.raises(HeadwaterError, match="lack column"):
        store.write(view, rows([1], [T0], [1]).drop_columns(["a"]))
    with pytest.raises(HeadwaterError, match="null event_timestamp"):
        store.write(view, rows([1], [None], [1]))  # type: ignore[list-item]


# ------------------------------------------------------------------ store specifics
def test_sqlite_is_the_default_and_is_thread_safe(tmp_path: Path) -> None:
    store = open_online_store(ProjectConfig(project="shop", root=tmp_path))
    assert isinstance(store, SqliteOnlineStore)
    assert (tmp_path / "data" / "online.db").exists()
    view = make_view()
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(20):
                key = offset * 100 + i
                store.write(view, rows([key], [T0], [key]))
                assert value(store, view, key) == key
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    store.close()
    assert errors == []


@contextmanager
def _redis(
    tmp_path: Path, redis_url: str, prefix: str, **config: Any
) -> Iterator[tuple[RedisOnlineStore, Any]]:
    """A Redis online store opened from a project's configuration, and a plain client of the
    same server; both closed after."""
    import redis

    project = ProjectConfig(project="shop", root=tmp_path)
    settings = RedisConfig(url=SecretStr(redis_url), key_prefix=prefix, **config)
    store = open_online_store(project.model_copy(update={"online_store": settings}))
    assert isinstance(store, RedisOnlineStore)
    client = redis.Redis.from_url(redis_url)
    try:
        yield store, client
    finally:
        client.close()
        store.close()


@pytest.mark.redis
def test_redis_ttl_sets_expiry_and_skips_expired_rows(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    with _redis(tmp_path, redis_url, redis_prefix) as (store, client):
        view = make_view(ttl=timedelta(days=1))
        now = datetime.now(UTC).replace(microsecond=0)
        fresh = now - timedelta(hours=1)
        assert store.write(view, rows([1], [fresh], ["fresh"])) == 1
        key = f"{redis_prefix}v:[1]"
        assert client.pexpiretime(key) == ms(fresh) + 86_400_000
        assert 0 < client.pttl(key) <= 23 * 3_600_000
        assert store.write(view, rows([2], [now - timedelta(days=2)], ["expired"])) == 0
        assert not client.exists(f"{redis_prefix}v:[2]")
        assert value(store, view, 2) is None

        forever = make_view("forever")
        store.write(forever, rows([1], [fresh], ["x"]))
        assert client.pttl(f"{redis_prefix}forever:[1]") == -1


@pytest.mark.redis
def test_redis_error_reply_is_raised_after_every_reply_and_the_store_stays_usable(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    with _redis(tmp_path, redis_url, redis_prefix, batch_size=100) as (store, client):
        view = make_view()
        n = 1_000  # four script calls; the second one meets a key of the wrong type
        client.set(f"{redis_prefix}v:[300]", "not a hash")
        table = rows(list(range(n)), [T0] * n, list(range(n)))
        with pytest.raises(HeadwaterError, match=r"refused a write of view 'v'.*WRONGTYPE"):
            store.write(view, table)
        assert value(store, view, 0) == 0  # the first call's entities were written
        assert value(store, view, 999) == 999  # and so were the calls after the failing one
        client.delete(f"{redis_prefix}v:[300]")
        # Every reply of the failed write was read: the next replies are this write's own.
        assert store.write(view, rows([300, 1], [T0, T0 + timedelta(days=1)], [-1, -2])) == 2
        assert [value(store, view, k) for k in (300, 1, 2)] == [-1, -2, 2]


@pytest.mark.redis
def test_redis_default_prefix_is_the_project(tmp_path: Path, redis_url: str) -> None:
    import redis

    project = ProjectConfig(project=f"hwtest_{time.time_ns()}", root=tmp_path)
    store = RedisOnlineStore(RedisConfig(url=SecretStr(redis_url)), project)
    client = redis.Redis.from_url(redis_url)
    try:
        store.write(make_view(), rows([1], [T0], [1]))
        assert client.exists(f"{project.project}:v:[1]")
    finally:
        store.delete_view("v")
        assert not list(client.scan_iter(match=f"{project.project}:*"))
        client.close()
        store.close()


def test_redis_connection_failure_names_the_redacted_url(tmp_path: Path) -> None:
    config = RedisConfig(url=SecretStr("redis://app:hunter2@127.0.0.1:1/0"))
    with pytest.raises(ConnectionFailed) as caught:
        RedisOnlineStore(config, ProjectConfig(project="shop", root=tmp_path))
    message = str(caught.value)
    assert "redis://app:***@127.0.0.1:1/0" in message
    assert "hunter2" not in message
    assert caught.value.fix
