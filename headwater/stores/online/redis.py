"""The Redis online store: one hash per (view, entity), written by an atomic Lua upsert."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import SecretStr

from headwater.config.models import OnlineStoreConfig
from headwater.errors import ConfigError, ConnectionFailed, HeadwaterError, MissingDependency
from headwater.observability.redact import redact
from headwater.stores.online.codec import (
    EncodedRows,
    Stored,
    decode_stored,
    deserialize_schema,
    encode_key,
    prepare_rows,
    schema_id,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.definitions import FeatureView
    from headwater.stores.online.base import OnlineRow

# KEYS: entity hashes. ARGV: per key, four values: event ms, created ms ('' = none), payload,
# expire-at ms ('' = no ttl). Each row is written only when it wins the latest-row rule; the
# script returns how many were written. One call carries many entities (the store talks to a
# single Redis server, so every key is local to it) and runs atomically.
UPSERT_LUA = """
local written = 0
for i, key in ipairs(KEYS) do
  local base = (i - 1) * 4
  local ts = tonumber(ARGV[base + 1])
  local wins = true
  local stored = redis.call('HMGET', key, 'ts', 'cts')
  if stored[1] then
    local stored_ts = tonumber(stored[1])
    if ts < stored_ts then
      wins = false
    elseif ts == stored_ts then
      local new_cts = -9.0e18
      if ARGV[base + 2] ~= '' then new_cts = tonumber(ARGV[base + 2]) end
      local old_cts = -9.0e18
      if stored[2] and stored[2] ~= '' then old_cts = tonumber(stored[2]) end
      if new_cts < old_cts then wins = false end
    end
  end
  if wins then
    redis.call('HSET', key, 'ts', ARGV[base + 1], 'cts', ARGV[base + 2], 'v', ARGV[base + 3])
    if ARGV[base + 4] ~= '' then
      redis.call('PEXPIREAT', key, ARGV[base + 4])
    else
      redis.call('PERSIST', key)
    end
    written = written + 1
  end
end
return written
"""
_ROWS_PER_CALL = 256

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # the C encoder is optional: redis-py's own then
    _hiredis_pack = None


def _pack(conn: Any, command: tuple[Any, ...]) -> list[bytes]:
    """``command`` in the wire format, as the chunks a connection sends."""
    if _hiredis_pack is not None:
        return [_hiredis_pack(command)]
    return list(conn.pack_command(*command))


_SCHEMAS_SUFFIX = ":#schemas"
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class RedisOnlineStoreConfig(OnlineStoreConfig):
    """``online_store`` of ``type: redis``: latest values in Redis hashes."""

    type: Literal["redis"] = "redis"
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    """``redis://[user:password@]host:port/db``, or ``rediss://...`` for TLS."""
    key_prefix: str | None = None
    """Prefix of every key (default: ``<project>:``)."""
    batch_size: int = 1_000
    """Entities read per pipeline round trip (writes send all their calls, then read)."""


class RedisOnlineStore:
    """Latest feature values in Redis hashes.

    Entity ``k`` of view ``v`` lives in the hash ``<prefix>v:<encoded key>`` with fields ``ts``
    (event ms), ``cts`` (created ms or empty) and ``v`` (payload). Payload schemas live in the
    hash ``<prefix>v:#schemas``. Views with a ``ttl`` get ``PEXPIREAT event_ts + ttl`` so Redis
    frees expired entities; rows already expired when written are skipped.

    Args:
        store_config: the ``online_store`` section of ``headwater.yaml``.
        project_config: the whole project configuration (default key prefix ``<project>:``).
    """

    config_model: ClassVar[type[RedisOnlineStoreConfig]] = RedisOnlineStoreConfig
    SUPPORTS_TTL_EXPIRY: ClassVar[bool] = True
    REQUIRES: ClassVar[tuple[str, ...]] = ("redis",)
    EXTRA: ClassVar[str] = "redis"

    def __init__(self, store_config: RedisOnlineStoreConfig, project_config: ProjectConfig) -> None:
        try:
            import redis
        except ImportError as exc:
            raise MissingDependency("redis", "redis") from exc
        url = store_config.url.get_secret_value()
        self.prefix = store_config.key_prefix or f"{project_config.project}:"
        self.batch_size = max(1, store_config.batch_size)
        try:
            self._client: Any = redis.Redis.from_url(url, socket_connect_timeout=10.0)
        except ValueError as exc:
            raise ConfigError(
                f"online_store.url {redact(url)} is not a valid Redis URL: {exc}",
                fix="use redis://[user:password@]host:port/db or rediss://... for TLS",
            ) from exc
        try:
            self._client.ping()
        except redis.exceptions.RedisError as exc:
            self._client.close()
            raise ConnectionFailed(
                f"cannot connect to the Redis online store at {redact(url)}: {redact(str(exc))}",
                fix="start Redis or point online_store.url in headwater.yaml at a reachable "
                "server (check host, port, password and TLS)",
            ) from exc
        self._schemas: dict[str, dict[str, pa.Schema]] = {}

    # ----------------------------------------------------------------- helpers
    def _key(self, view_name: str, encoded_key: str) -> str:
        return f"{self.prefix}{view_name}:{encoded_key}"

    def _load_schemas(self, view_name: str, needed: set[str]) -> dict[str, pa.Schema]:
        cached = self._schemas.setdefault(view_name, {})
        if needed - cached.keys():
            stored = self._client.hgetall(f"{self.prefix}{view_name}{_SCHEMAS_SUFFIX}")
            for sid, blob in stored.items():
                cached.setdefault(sid.decode("ascii"), deserialize_schema(blob))
        return cached

    # ----------------------------------------------------------------- protocol
    def write(self, view: FeatureView, rows: pa.Table) -> int:
        """Upsert the latest row per entity; return how many entities changed."""
        import redis

        ttl_ms = view.ttl_ms
        keep_after = None if ttl_ms is None else time.time_ns() // 1_000_000 - ttl_ms
        encoded = prepare_rows(view, rows, keep_after_ms=keep_after)
        if not encoded.keys:
            return 0
        schemas = f"{self.prefix}{view.name}{_SCHEMAS_SUFFIX}"
        commands = itertools.chain(
            [(b"HSETNX", schemas, encoded.schema_id, encoded.schema_bytes)],
            self._upserts(view.name, encoded, ttl_ms),
        )
        try:
            replies = self._send(commands)
        except redis.exceptions.ResponseError as exc:
            raise HeadwaterError(
                f"the Redis online store refused a write of view {view.name!r}: {exc}",
                fix=f"keys under the prefix {self.prefix!r} are headwater's alone: delete "
                "the keys another program wrote there, or set another online_store.key_prefix",
            ) from exc
        return int(sum(replies[1:]))  # the schema's reply is not a count of entities

    def _upserts(
        self, view_name: str, encoded: EncodedRows, ttl_ms: int | None
    ) -> Iterator[tuple[Any, ...]]:
        """One EVAL of the upsert script per ``_ROWS_PER_CALL`` entities."""
        prefix = self._key(view_name, "")
        keys = [prefix + key for key in encoded.keys]
        event = encoded.event_ts_ms
        created = ["" if c is None else c for c in encoded.created_ts_ms]
        expire: list[Any] = [""] * len(event) if ttl_ms is None else [t + ttl_ms for t in event]
        payloads = encoded.payloads
        for start in range(0, len(keys), _ROWS_PER_CALL):
            end = start + _ROWS_PER_CALL
            some = keys[start:end]
            args = zip(
                event[start:end],
                created[start:end],
                payloads[start:end],
                expire[start:end],
                strict=True,
            )
            yield (b"EVAL", UPSERT_LUA, len(some), *some, *itertools.chain.from_iterable(args))

    def _send(self, commands: Iterable[tuple[Any, ...]]) -> list[Any]:
        """Run ``commands`` on one connection: all sent back to back, then every reply read,
        so that the server works on the first ones while the next are being encoded. The
        whole sequence is retried on connection errors (each command is idempotent)."""
        import redis

        pool = self._client.connection_pool
        conn = pool.get_connection()
        commands = list(commands)

        def run() -> list[Any]:
            for count, command in enumerate(commands):
                conn.send_packed_command(_pack(conn, command), check_health=count == 0)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.exceptions.ResponseError as exc:  # the rest must still be read
                    replies.append(exc)
            return replies

        try:
            replies: list[Any] = conn.retry.call_with_retry(run, lambda _error: conn.disconnect())
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def read(self, view: FeatureView, entity_keys: list[tuple[Any, ...]]) -> list[OnlineRow | None]:
        """Rows for each key tuple, in order; ``None`` where nothing is stored."""
        keys = [self._key(view.name, encode_key(k)) for k in entity_keys]
        stored: list[Stored | None] = []
        for start in range(0, len(keys), self.batch_size):
            pipe = self._client.pipeline(transaction=False)
            for key in keys[start : start + self.batch_size]:
                pipe.hmget(key, "ts", "cts", "v")
            replies: Sequence[list[bytes | None]] = pipe.execute()
            for ts, cts, payload in replies:
                if ts is None or payload is None:
                    stored.append(None)
                else:
                    stored.append((int(ts), int(cts) if cts else None, payload))
        needed = {schema_id(entry[2]) for entry in stored if entry is not None}
        schemas = self._load_schemas(view.name, needed) if needed else {}
        return decode_stored(view, stored, schemas)

    def delete_view(self, view_name: str) -> None:
        """Unlink every key of the view (entities and schemas); other views are untouched."""
        pattern = _glob_escape(f"{self.prefix}{view_name}") + ":*"
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=pattern, count=1_000):
            batch.append(key)
            if len(batch) >= 1_000:
                self._client.unlink(*batch)
                batch = []
        if batch:
            self._client.unlink(*batch)
        self._schemas.pop(view_name, None)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
