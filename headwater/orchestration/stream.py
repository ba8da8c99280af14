"""Streaming workers: a feature view computed from a Kafka topic, micro-batch by micro-batch.

One worker runs one view. It joins the view's consumer group, so several workers (threads of
``headwater stream --workers N`` or separate processes and pods) share the topic's partitions.
Each micro-batch goes through the same steps:

1. decode the messages to an Arrow table (bad ones become dead letters), chunk by chunk as
   they are taken from the consumer;
2. fold the events into the window state of their partition (late ones become dead letters);
3. advance the watermark — the minimum over the worker's partitions of the newest event time
   seen, minus the allowed lateness, a partition idle for ``idle_timeout`` not counting — and
   close every window that ends at or before it;
4. write the closed windows' rows to the offline store (a keyed merge) and the online store
   (the latest-row rule), and the dead letters to their sink;
5. commit, in one registry transaction, each partition's next offset with its window state.

Step 4 is idempotent (same keys, same values) and step 5 is atomic and fenced by the offset it
expects, so a worker killed at any point and restarted — or replaced by another after a
rebalance — replays from the last commit and ends in exactly the state of an uninterrupted run.

The writes of step 4 run in threads while the next micro-batch is gathered and decoded (mostly
waits on the stores' servers, and on another core when there is one); step 5 comes once they
finished, before the next batch touches the window state — and before a rebalance, a stop, or
declaring the topic caught up.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.definitions.kafka import KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TIMESTAMP, KafkaSource
from headwater.errors import ConfigError, DefinitionError, HeadwaterError, StaleCheckpoint
from headwater.observability import stream_metrics as metrics
from headwater.observability.redact import redact
from headwater.stores.registry import StreamPartition

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.connectors.kafka.decode import Decoded
    from headwater.connectors.kafka.letters import DeadLetter
    from headwater.definitions import FeatureView
    from headwater.engines.streaming.state import WindowState
    from headwater.orchestration.dead_letters import DeadLetterSink
    from headwater.quality.gate import QualityGate
    from headwater.stores.offline.base import OfflineStore
    from headwater.stores.online.base import OnlineStore
    from headwater.stores.registry import Registry

log = logging.getLogger("headwater.stream")

_ASSIGN_TIMEOUT_S = 120.0
_WRITE_RETRIES = 8
_IDLE_MEMBER_S = 15.0
_CHUNK = 10_000
"""Messages taken from the consumer's queue per call while a micro-batch is gathered."""
_CHUNK_WAIT_S = 0.05
"""Longest wait for the queue to refill before a gathered micro-batch is processed."""


@dataclass
class StreamOptions:
    """How a worker runs.

    Attributes:
        until_caught_up: stop once every partition reached the end offset it had at start
            (after emitting what the watermark closed and committing), instead of running on.
        max_batch_messages: most messages in one micro-batch.
        max_batch_wait_s: longest wait for a micro-batch to fill.
        stop: set it to stop the worker after the current micro-batch.
        on_batch: called after every committed micro-batch with the running totals.
    """

    until_caught_up: bool = False
    max_batch_messages: int = 200_000
    max_batch_wait_s: float = 0.5
    stop: threading.Event = field(default_factory=threading.Event)
    on_batch: Callable[[StreamStats], None] | None = None


@dataclass
class StreamStats:
    """Running totals of one worker."""

    view: str
    run_id: str = ""
    messages: int = 0
    events: int = 0
    rows_out: int = 0
    dead_letters: int = 0
    late: int = 0
    batches: int = 0
    watermark_ms: int | None = None
    partitions: list[int] = field(default_factory=list)
    dead_by_check: dict[str, int] = field(default_factory=dict)
    rows_quarantined: int = 0
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Checks that did not pass in some micro-batch: action and rows failed in all."""


@dataclass
class _Partition:
    """What a worker knows of one partition it owns."""

    expected: int | None  # the committed next offset (None: never committed)
    next_offset: int | None
    max_ts: int | None
    last_event_at: float
    dirty: bool = False


class _Collector:
    """Python's cyclic garbage collector, paced by micro-batches while workers run.

    A micro-batch allocates hundreds of thousands of objects (one per Kafka message), and the
    collector, triggered by allocation counts, would traverse them — and every long-lived
    object of the process — again and again: on one core that took as much time as the
    consumer itself. While any worker runs, the objects that exist at its start are frozen
    (left out of collections), automatic collection is off, and each worker collects the young
    generations after each micro-batch and everything every ``_FULL_EVERY`` batches."""

    _FULL_EVERY = 50

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._was_enabled = True
        self._batches = 0

    def start(self) -> None:
        with self._lock:
            if self._running == 0:
                self._was_enabled = gc.isenabled()
                gc.collect()
                gc.freeze()
                gc.disable()
            self._running += 1

    def batch_done(self) -> None:
        with self._lock:
            self._batches += 1
            full = self._batches % self._FULL_EVERY == 0
        gc.collect(2 if full else 1)

    def stop(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                gc.unfreeze()
                if self._was_enabled:
                    gc.enable()


_collector = _Collector()


def fingerprint(view: FeatureView, schema: pa.Schema) -> str:
    """What the saved window state depends on; a different value means the state is unusable."""
    source = view.source
    spec = {
        "features": [a.to_spec() for a in view.aggregations] or view.projections,
        "window": None if view.window is None else view.window.to_spec(),
        "keys": view.join_keys,
        "timestamp": source.timestamp_field,
        "created": source.created_timestamp_field,
        "schema": [(f.name, str(f.type)) for f in schema],
    }
    if view.transforms:  # cleaning steps change the values the state holds
        spec["transforms"] = [step.to_spec() for step in view.transforms]
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def schema_checkpoint(view: str) -> str:
    return f"stream-schema:{view}"


class StreamWorker:
    """Computes one view from its Kafka topic until stopped (or caught up)."""

    def __init__(
        self,
        project: ProjectConfig,
        view: FeatureView,
        registry: Registry,
        offline: OfflineStore,
        online: OnlineStore | None,
        engine_connect: Callable[[], duckdb.DuckDBPyConnection],
        options: StreamOptions | None = None,
    ) -> None:
        from headwater.connectors.kafka.client import kafka_connection
        from headwater.connectors.kafka.decode import Decoder

        source = view.source
        if not isinstance(source, KafkaSource):
            raise DefinitionError(
                f"view {view.name!r} reads source {source.name!r} of kind {source.kind!r}, "
                "which is not a stream",
                fix="`headwater stream` runs views whose source is a KafkaSource; use "
                "`headwater run` for batch sources",
            )
        self.project = project
        self.view = view
        self.source: KafkaSource = source
        self.registry = registry
        self.offline = offline
        self.online = online if view.online else None
        self.options = options or StreamOptions()
        self.conn = kafka_connection(project, source.connection, f"source {source.name!r}")
        saved = registry.get_checkpoint(schema_checkpoint(view.name))
        schema = _schema_from_text(saved) if saved else None
        self.decoder = Decoder(
            source, self.conn, schema=schema, message_time=_reads_message_time(view)
        )
        self.con = engine_connect()
        from headwater.transforms.runtime import StreamTransforms

        # Refuses steps without a per-micro-batch meaning; loads (or fits) their statistics.
        self.transforms = StreamTransforms(view, project=project, registry=registry, con=self.con)
        self.state: WindowState | None = None
        self.owned: dict[int, _Partition] = {}
        self._pending_restore: dict[int, StreamPartition] = {}
        self.stats = StreamStats(view=view.name)
        self.lateness_ms = source.lateness_ms()
        self.idle_s = source.idle_timeout_ms() / 1000
        self._assigned_once = False
        self._end_offsets: dict[int, int] = {}
        self.dead: DeadLetterSink = self._dead_letter_sink()
        self._checked = bool(getattr(source, "checks", ()) or view.checks)
        self._pools: dict[str, ThreadPoolExecutor] = {}  # a writing thread per store
        self._writes: list[Future[Any]] = []  # the last micro-batch's writes
        self._unsettled = False  # the last micro-batch is not committed yet
        if self.decoder.schema is not None:
            self._ensure_state(self.decoder.schema)

    # ------------------------------------------------------------------ setup
    def _dead_letter_sink(self) -> DeadLetterSink:
        from headwater.orchestration.dead_letters import TableDeadLetters, TopicDeadLetters

        if self.source.dead_letter_topic:
            return TopicDeadLetters(self.conn, self.source.dead_letter_topic)
        return TableDeadLetters(self.offline, self.view.name)

    def _ensure_state(self, schema: pa.Schema) -> None:
        if self.view.kind != "aggregation" or self.state is not None:
            return
        from headwater.engines.streaming.state import WindowState

        schema = self.transforms.schema(schema)  # the state holds the transformed columns
        self._fingerprint = fingerprint(self.view, schema)
        self.state = WindowState(
            self.con,
            self.view,
            schema,
            partition_column=KAFKA_PARTITION,
            offset_column=KAFKA_OFFSET,
        )
        for partition, saved in self._pending_restore.items():
            self._restore(partition, saved)
        self._pending_restore.clear()

    def _restore(self, partition: int, saved: StreamPartition) -> None:
        assert self.state is not None
        found = saved.meta.get("fingerprint")
        if found is not None and found != self._fingerprint:
            raise DefinitionError(
                f"view {self.view.name!r} changed (features, window, keys or source columns) "
                "since its streaming state was saved",
                fix=f"run `headwater stream --reset {self.view.name}` to start it over from the "
                "beginning of the topic",
            )
        self.state.restore(partition, saved.state, saved.meta.get("closed"), saved.pieces)

    # ------------------------------------------------------------------ run
    def run(self) -> StreamStats:
        """Consume until stopped (or caught up); return the totals."""
        from confluent_kafka import Consumer

        from headwater.connectors.kafka.client import consumer_config, end_offsets

        options = self.options
        self.stats.run_id = self.registry.start_run(
            self.view.name, "stream", {"topic": self.source.topic}
        )
        consumer = Consumer(
            consumer_config(self.conn, group_id=self.source.group_id(self.view.name))
        )
        _collector.start()
        try:
            self._check_topic(consumer)
            done = False
            if options.until_caught_up:
                self._end_offsets = end_offsets(self.conn, self.source.topic)
                # Committed progress already covers the topic: nothing to join the group for.
                done = self._caught_up(consumer)
            if not done:
                consumer.subscribe(
                    [self.source.topic],
                    on_assign=self._on_assign,
                    on_revoke=self._on_revoke,
                    on_lost=self._on_revoke,
                )
            started = time.monotonic()
            while not done and not options.stop.is_set():
                batch = self._next_batch(consumer)
                if batch.count:
                    self._process(consumer, batch)
                elif self.owned:
                    self._tick(consumer)
                del batch
                _collector.batch_done()
                if options.until_caught_up:
                    waited = time.monotonic() - started
                    # Leaving a group in the middle of a join can stall it for the others: a
                    # worker that was never given a partition waits a while before it stops
                    # on the strength of the other workers' committed progress.
                    if (self._assigned_once or waited > _IDLE_MEMBER_S) and self._caught_up(
                        consumer
                    ):
                        self._settle(consumer)  # then ask again: the commit may be refused
                        if self._caught_up(consumer):
                            done = True
                            break
                    if not self._assigned_once and waited > _ASSIGN_TIMEOUT_S:
                        raise HeadwaterError(
                            f"view {self.view.name!r}: no partition of topic "
                            f"{self.source.topic!r} was assigned within {_ASSIGN_TIMEOUT_S:.0f}s",
                            fix="check that the broker is reachable and the consumer group is "
                            "not held by other workers",
                        )
            self._settle(consumer)
            if done:
                # Everything up to the end offsets seen at start is written and committed.
                log.info(
                    "caught up",
                    extra={
                        "fields": {
                            "view": self.view.name,
                            "events": self.stats.events,
                            "batches": self.stats.batches,
                        }
                    },
                )
        except BaseException as exc:
            text = (
                exc.message if isinstance(exc, HeadwaterError) else f"{type(exc).__name__}: {exc}"
            )
            self.registry.finish_run(self.stats.run_id, "failed", error=redact(text))
            consumer.close()
            raise
        finally:
            _collector.stop()
            for pool in self._pools.values():
                pool.shutdown()  # after a failure: the unfinished writes end first
            self._pools.clear()
        consumer.close()
        self.registry.finish_run(
            self.stats.run_id,
            "success",
            rows_in=self.stats.events,
            rows_out=self.stats.rows_out,
            details=self._details(),
        )
        return self.stats

    def _next_batch(self, consumer: Any) -> _Batch:
        """The next micro-batch: up to ``max_batch_messages`` messages, gathered for at most
        ``max_batch_wait_s``. Taken from the consumer's queue in chunks, and closed early once
        the queue runs dry after the first message: one large ``consume`` waits for the whole
        count (the queue refills only while the fetcher gets to run), and gathering what is
        already fetched costs less and keeps latency low.

        Each chunk is decoded as it is taken and its messages are let go, except those that may
        still become dead letters when the batch is folded (see :meth:`_suspects`): a
        micro-batch's hundreds of thousands of message objects are never alive at once (their
        memory, allocated afresh for every batch, cost more than the decoding)."""
        options = self.options
        wanted = options.max_batch_messages
        chunk = min(_CHUNK, wanted)
        deadline = time.monotonic() + options.max_batch_wait_s
        batch = _Batch()
        taken = self._take_chunk(consumer, chunk, options.max_batch_wait_s, batch)
        while taken and batch.count < wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            size = min(chunk, wanted - batch.count)
            if self._take_chunk(consumer, size, min(left, _CHUNK_WAIT_S), batch) < size:
                break  # the queue ran dry
        return batch

    def _take_chunk(self, consumer: Any, size: int, timeout: float, batch: _Batch) -> int:
        """Consume up to ``size`` messages into ``batch``; return how many were taken."""
        from confluent_kafka import KafkaError, KafkaException

        messages: list[Any] = consumer.consume(size, timeout)
        taken = len(messages)
        good = [m for m in messages if m.error() is None]
        if len(good) < taken:
            for message in messages:
                error = message.error()
                if error is None or error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise KafkaException(error)
                log.warning(
                    "kafka error", extra={"fields": {"view": self.view.name, "error": str(error)}}
                )
        del messages
        if good:
            decoded = self.decoder.decode(good)
            batch.add(decoded, good, self._suspects(decoded, good))
        return taken

    def _suspects(self, decoded: Decoded, messages: list[Any]) -> list[Any]:
        """The messages of a decoded chunk that folding may yet turn into dead letters (late,
        or without a join key): all of them when some row is keyless or may be late, when
        transforms may change keys and times, or before the window state exists; none
        otherwise (the common case: no event older than what has closed)."""
        table = decoded.table
        if not table.num_rows:
            return []
        if self.view.transforms or (self.view.kind == "aggregation" and self.state is None):
            return messages
        if any(
            k not in table.column_names or table.column(k).null_count for k in self.view.join_keys
        ):
            return messages
        if self.state is not None and self.state.may_be_late(table):
            return messages
        return []

    def _details(self) -> dict[str, Any]:
        s = self.stats
        return {
            "messages": s.messages,
            "dead_letters": s.dead_letters,
            "dead_letters_by_check": s.dead_by_check,
            "late": s.late,
            "batches": s.batches,
            "watermark_ms": s.watermark_ms,
            "rows_quarantined": s.rows_quarantined,
            "quality": s.quality,
        }

    def _check_topic(self, consumer: Any) -> None:
        metadata = consumer.list_topics(self.source.topic, timeout=15)
        topic = metadata.topics.get(self.source.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise ConfigError(
                f"source {self.source.name!r}: topic {self.source.topic!r} does not exist on "
                f"{self.conn.bootstrap_servers}",
                fix="create the topic (with its partitions) or correct `topic=`",
            )

    # ------------------------------------------------------------------ rebalances
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._settle(consumer)
        numbers = [tp.partition for tp in partitions]
        saved = self.registry.stream_partitions(self.view.name, self.source.topic, numbers)
        now = time.monotonic()
        for tp in partitions:
            tp.offset = self._take(tp.partition, saved.get(tp.partition), now)
        consumer.assign(partitions)
        self._assigned_once = True
        self.stats.partitions = sorted(self.owned)
        log.info(
            "partitions assigned",
            extra={"fields": {"view": self.view.name, "partitions": numbers}},
        )

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._settle(consumer)  # what was read of them is committed before they go
        for tp in partitions:
            self.owned.pop(tp.partition, None)
            self._pending_restore.pop(tp.partition, None)
            if self.state is not None:
                self.state.drop(tp.partition)
        consumer.unassign()
        self.stats.partitions = sorted(self.owned)
        log.info(
            "partitions revoked",
            extra={
                "fields": {"view": self.view.name, "partitions": [t.partition for t in partitions]}
            },
        )

    # ------------------------------------------------------------------ batches
    def _process(self, consumer: Any, batch: _Batch) -> None:
        self._settle(consumer)  # the previous batch's writes and commit
        started = time.perf_counter()
        decoded = batch.decoded()
        messages = batch.kept
        if self.decoder.schema is not None and self.state is None:
            self._save_schema(self.decoder.schema)
            self._ensure_state(self.decoder.schema)
        dead: list[DeadLetter] = list(decoded.dead)
        now = time.monotonic()
        for partition, offset in batch.last_offsets(decoded).items():
            part = self.owned.get(partition)
            if part is not None:
                part.next_offset = offset + 1
                part.dirty = True
        table = decoded.table
        gate = self._gate() if self._checked else None
        try:
            if gate is not None and table.num_rows:
                table = self._checked_source(gate, table)
            table = self.transforms.apply(table)  # the view's row-level cleaning steps
            self._fold(consumer, messages, batch.count, table, dead, now, gate)
            if gate is not None:
                gate.commit()  # quarantined rows, before the offsets move past them
                self._count_quality(gate)
        finally:
            if gate is not None:
                gate.release()
        self._unsettled = True  # committed by _settle, once the writes finished
        name = self.view.name
        metrics.MESSAGES.labels(name).inc(batch.count)
        metrics.EVENTS.labels(name).inc(decoded.table.num_rows)
        metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)

    def _fold(
        self,
        consumer: Any,
        messages: list[Any],
        count: int,
        table: pa.Table,
        dead: list[DeadLetter],
        now: float,
        gate: QualityGate | None,
    ) -> None:
        """Fold the checked events into the state, close windows, write the effects
        (``messages``: those of the batch's ``count`` that may become dead letters)."""
        out: list[pa.Table] = []
        if self.view.kind == "aggregation" and self.state is not None:
            result = self.state.add(table)
            if result.late or result.keyless:
                dead += self._letters(messages, result.late, "late", self._late_reason)
                dead += self._letters(messages, result.keyless, "schema", self._keyless_reason)
            for partition, ts in result.max_ts.items():
                part = self.owned.get(partition)
                if part is not None:
                    part.max_ts = ts if part.max_ts is None else max(part.max_ts, ts)
                    part.last_event_at = now
            if self.view.emit == "update":
                out.append(self.state.updates())
            out.append(self._close(now))
            self.stats.late += len(result.late)
        else:
            rows, keyless = self._project(table)
            out.append(rows)
            dead += self._letters(messages, keyless, "schema", self._keyless_reason)
        self.stats.messages += count
        self.stats.events += table.num_rows
        rows = self._combine(out)
        if rows is not None and gate is not None and self.view.checks:
            rows = gate.output(rows.to_reader()).read_all()  # view checks, before any write
        self._write(rows, dead)

    # ------------------------------------------------------------------ quality
    def _gate(self) -> QualityGate:
        from headwater.quality.gate import QualityGate

        # Results are summed into the run's details rather than recorded per micro-batch.
        return QualityGate(
            self.con,
            self.view,
            run_id=self.stats.run_id,
            project=self.project,
            registry=None,
            offline=self.offline,
        )

    def _checked_source(self, gate: QualityGate, table: pa.Table) -> pa.Table:
        self.con.register("__hw_decoded", table)
        try:
            relation = gate.source("__hw_decoded")
            return self.con.sql(f"SELECT * FROM {relation}").to_arrow_table()
        finally:
            self.con.unregister("__hw_decoded")

    def _combine(self, outputs: list[pa.Table]) -> pa.Table | None:
        """One table of the batch's output rows (``None``: none). A window that both updated
        and closed in the batch comes twice with the same values: kept once."""
        import pyarrow as pa

        tables = [t for t in outputs if t.num_rows]
        if len(tables) < 2:
            return tables[0] if tables else None
        self.con.register("__hw_out", pa.concat_tables(tables))
        try:
            return self.con.sql("SELECT DISTINCT * FROM __hw_out").to_arrow_table()
        finally:
            self.con.unregister("__hw_out")

    def _count_quality(self, gate: QualityGate) -> None:
        quality = self.stats.quality
        for _stage, result in gate.report.results:
            if result.action == "passed":
                continue
            entry = quality.setdefault(result.check, {"action": result.action, "rows_failed": 0})
            entry["rows_failed"] += result.rows_failed
        self.stats.rows_quarantined += gate.rows_quarantined

    def _tick(self, consumer: Any) -> None:
        """No message arrived: idle partitions, or partitions just taken over with their saved
        state, may now let windows close."""
        self._settle(consumer)
        if self.view.kind != "aggregation" or self.state is None:
            return
        before = dict(self.state.closed)
        out = self._close(time.monotonic())
        if out.num_rows or self.state.closed != before:
            for partition in self.owned:
                self.owned[partition].dirty = True
            self._write(out, [])
            self._unsettled = True
        self._settle(consumer)

    def _watermark(self, now: float) -> int | None:
        """Min over the partitions that delivered events and are not idle of their newest
        event time, minus the lateness. When every such partition is idle, the stream is
        quiet: the newest event time of any partition decides, so windows still close."""
        seen = [p for p in self.owned.values() if p.max_ts is not None]
        if not seen:
            return None
        active = [
            p.max_ts
            for p in seen
            if p.max_ts is not None
            and (self.options.until_caught_up or now - p.last_event_at < self.idle_s)
        ]
        if not active:
            return max(p.max_ts for p in seen if p.max_ts is not None) - self.lateness_ms
        return min(active) - self.lateness_ms

    def _close(self, now: float) -> pa.Table:
        assert self.state is not None
        watermark = self._watermark(now)
        if watermark is None:
            return self.state.close({})
        if self.stats.watermark_ms is None or watermark > self.stats.watermark_ms:
            self.stats.watermark_ms = watermark
        closing = {p: watermark for p, part in self.owned.items() if part.max_ts is not None}
        for partition in closing:
            if self.state.closed.get(partition) != watermark:
                self.owned[partition].dirty = True
        return self.state.close(closing)

    def _project(self, table: pa.Table) -> tuple[pa.Table, list[tuple[int, int]]]:
        from headwater.engines.compile import compile_view
        from headwater.sql import quote_ident as q

        con = self.con
        con.register("__hw_batch", table)
        try:
            keys_null = " OR ".join(f"{q(k)} IS NULL" for k in self.view.join_keys)
            keyless = con.execute(
                f"SELECT {q(KAFKA_PARTITION)}, {q(KAFKA_OFFSET)} FROM __hw_batch WHERE {keys_null}"
            ).fetchall()
            rows = con.sql(compile_view(self.view, "__hw_batch", table.schema)).to_arrow_table()
        finally:
            con.unregister("__hw_batch")
        return rows, [(int(p), int(o)) for p, o in keyless]

    def _letters(
        self,
        messages: list[Any],
        where: list[tuple[int, int]],
        check: str,
        reason: Callable[[Any], str],
    ) -> list[DeadLetter]:
        if not where:
            return []
        from headwater.connectors.kafka.letters import DeadLetter

        wanted = set(where)
        return [
            DeadLetter.of(message, check, reason(message))
            for message in messages
            if (message.partition(), message.offset()) in wanted
        ]

    def _late_reason(self, message: Any) -> str:
        closed = self.state.closed.get(message.partition()) if self.state else None
        return (
            f"late event: every window it belongs to closed when the watermark of partition "
            f"{message.partition()} passed {closed} ms (allowed lateness "
            f"{self.lateness_ms} ms)"
        )

    def _keyless_reason(self, message: Any) -> str:
        return f"join key {', '.join(self.view.join_keys)} missing or null"

    # ------------------------------------------------------------------ effects
    def _write(self, rows: pa.Table | None, dead: list[DeadLetter]) -> None:
        """Start writing ``rows`` to the online and offline stores (each in its thread: see
        :meth:`_settle`) and write the dead letters."""
        if rows is not None and rows.num_rows:
            if self.online is not None:
                self._writes.append(
                    self._thread("online").submit(self.online.write, self.view, rows)
                )
            if self.view.offline:
                self._writes.append(self._thread("offline").submit(self._write_offline, rows))
            self.stats.rows_out += rows.num_rows
            metrics.ROWS_OUT.labels(self.view.name).inc(rows.num_rows)
        if dead:
            self.dead.write(dead, self.stats.run_id)
            self.stats.dead_letters += len(dead)
            for letter in dead:
                self.stats.dead_by_check[letter.check] = (
                    self.stats.dead_by_check.get(letter.check, 0) + 1
                )
                metrics.DEAD_LETTERS.labels(self.view.name, letter.check).inc()
                if letter.check == "late":
                    metrics.LATE.labels(self.view.name).inc()

    def _settle(self, consumer: Any) -> None:
        """Wait for the writes of the last micro-batch, then commit it. Called before anything
        touches the window state or the partitions again, so a commit always follows the
        writes of what it commits."""
        writes, self._writes = self._writes, []
        failure: BaseException | None = None
        for write in writes:  # every one finishes, even after another failed
            try:
                write.result()
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            self._unsettled = False  # nothing of the batch is committed: it is read again
            raise failure
        if self._unsettled:
            self._unsettled = False
            self._commit(consumer)

    def _thread(self, store: str) -> ThreadPoolExecutor:
        """The thread writing to the ``online`` or ``offline`` store (one each: a store's
        writes stay in order)."""
        if store not in self._pools:
            self._pools[store] = ThreadPoolExecutor(
                1, thread_name_prefix=f"{store}-{self.view.name}"
            )
        return self._pools[store]

    def _write_offline(self, rows: pa.Table) -> None:
        """Merge ``rows`` into the offline table, retrying when another worker's commit to the
        same table got in first (the write is idempotent, so trying again is safe)."""
        attempt = 0
        while True:
            try:
                self.offline.write(self.view, rows.to_reader(), seq=self.registry.next_seq())
                return
            except DefinitionError:
                raise
            except Exception as exc:
                attempt += 1
                if attempt > _WRITE_RETRIES:
                    raise
                delay = min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.5)
                log.warning(
                    "offline write conflicted with another writer; retrying",
                    extra={
                        "fields": {"view": self.view.name, "attempt": attempt, "error": str(exc)}
                    },
                )
                time.sleep(delay)

    def _commit(self, consumer: Any) -> None:
        from confluent_kafka import TopicPartition

        from headwater.engines.streaming.state import Checkpoint

        updates: list[tuple[int | None, StreamPartition]] = []
        dirty: dict[int, int] = {
            p: part.next_offset
            for p, part in self.owned.items()
            if part.dirty and part.next_offset is not None
        }
        points = self.state.checkpoints(list(dirty)) if self.state else {}
        for partition, next_offset in dirty.items():
            part = self.owned[partition]
            closed = self.state.closed.get(partition) if self.state else None
            meta = {
                "max_ts": part.max_ts,
                "closed": closed,
                "fingerprint": getattr(self, "_fingerprint", None),
                "run_id": self.stats.run_id,  # which worker committed it last
            }
            point = points.get(partition, Checkpoint(None))
            saved = StreamPartition(
                partition,
                next_offset,
                meta,
                point.state,
                piece=point.piece,
                piece_end=point.piece_end,
                prune_through=closed,
            )
            updates.append((part.expected, saved))
        if not updates:
            return
        try:
            self.registry.commit_stream(self.view.name, self.source.topic, updates)
        except StaleCheckpoint as exc:
            log.warning(
                "partition moved to another worker; reloading",
                extra={"fields": {"view": self.view.name, "error": exc.message}},
            )
            self._reload(consumer, [u[1].partition for u in updates])
            return
        for _expected, saved in updates:
            part = self.owned[saved.partition]
            part.expected = saved.next_offset
            part.dirty = False
        if self.state is not None:
            self.state.saved([saved.partition for _e, saved in updates])
        self.stats.batches += 1
        metrics.BATCHES.labels(self.view.name).inc()
        if self.stats.watermark_ms is not None:
            metrics.WATERMARK.labels(self.view.name).set(self.stats.watermark_ms)
        consumer.commit(
            offsets=[
                TopicPartition(self.source.topic, saved.partition, saved.next_offset)
                for _e, saved in updates
            ],
            asynchronous=True,
        )
        if self.options.on_batch is not None:
            self.options.on_batch(self.stats)

    def _reload(self, consumer: Any, partitions: list[int]) -> None:
        """After a refused commit: take the partitions' saved progress again and seek there."""
        from confluent_kafka import TopicPartition

        saved = self.registry.stream_partitions(self.view.name, self.source.topic, partitions)
        now = time.monotonic()
        for partition in partitions:
            offset = self._take(partition, saved.get(partition), now)
            consumer.seek(TopicPartition(self.source.topic, partition, offset))

    def _take(self, partition: int, found: StreamPartition | None, now: float) -> int:
        """Own ``partition`` from its saved progress (``None``: from the beginning of the
        topic); return the offset to read from."""
        from confluent_kafka import OFFSET_BEGINNING

        offset = None if found is None else found.next_offset
        max_ts = None if found is None else found.meta.get("max_ts")
        self.owned[partition] = _Partition(offset, offset, max_ts, now)
        if self.state is not None:
            if found is None:
                self.state.restore(partition, None, None)
            else:
                self._restore(partition, found)
        elif found is not None and self.view.kind == "aggregation":
            self._pending_restore[partition] = found  # restored once the schema is known
        return OFFSET_BEGINNING if offset is None else offset

    def _caught_up(self, consumer: Any) -> bool:
        """True once this worker's partitions reached their end offsets *and* the committed
        progress of every partition of the topic did: a partition of a worker that died is
        taken over (after the group notices) rather than left behind. A worker that was never
        given a partition stops as soon as the others' committed progress covers the topic."""
        from confluent_kafka import TopicPartition

        for partition, part in self.owned.items():
            end = self._end_offsets.get(partition, 0)
            if end <= 0:
                continue
            position = part.next_offset
            if position is None or position < end:
                # Transaction markers occupy offsets no message reports: ask the consumer.
                pos = consumer.position([TopicPartition(self.source.topic, partition)])[0].offset
                if pos < end:
                    return False
        pending = [p for p, end in self._end_offsets.items() if end > 0 and p not in self.owned]
        if not pending:
            return True
        saved = self.registry.stream_partitions(self.view.name, self.source.topic, pending)
        if not all(p in saved and saved[p].next_offset >= self._end_offsets[p] for p in pending):
            return False
        if self.state is None:
            return True
        # A partition another member finished may still hold windows its worker's watermark
        # did not close (the worker died, or owned slower partitions). It is done only once
        # closed as far as the slowest partition of the topic allows; otherwise wait for it to
        # be reassigned here.
        newest = [saved[p].meta.get("max_ts") for p in pending]
        newest += [part.max_ts for part in self.owned.values()]
        known = [ts for ts in newest if ts is not None]
        if not known:
            return True
        watermark = min(known) - self.lateness_ms
        return all(
            saved[p].meta.get("max_ts") is None
            or (saved[p].meta.get("closed") is not None and saved[p].meta["closed"] >= watermark)
            for p in pending
        )

    def _save_schema(self, schema: pa.Schema) -> None:
        text = base64.b64encode(schema.serialize().to_pybytes()).decode()
        self.registry.set_checkpoint(schema_checkpoint(self.view.name), text)


def _reads_message_time(view: FeatureView) -> bool:
    """Whether anything reads the ``kafka_timestamp`` column of ``view``'s events: only an
    aggregation without checks or cleaning steps is known not to, unless it names it."""
    source = view.source
    if view.kind != "aggregation" or view.transforms or view.checks or source.checks:
        return True
    named = {source.timestamp_field, source.created_timestamp_field}
    named.update(view.join_keys)
    named.update(a.column for a in view.aggregations)
    return KAFKA_TIMESTAMP in named


class _Batch:
    """A micro-batch as it is gathered: the decoded chunks, the messages kept for dead
    letters and how many messages it holds."""

    def __init__(self) -> None:
        self.count = 0
        self.kept: list[Any] = []
        self._chunks: list[Decoded] = []
        self._undecoded: dict[int, int] = {}  # last offsets of chunks without rows' columns

    def add(self, decoded: Decoded, messages: list[Any], kept: list[Any]) -> None:
        self.count += len(messages)
        self.kept += kept
        self._chunks.append(decoded)
        if KAFKA_PARTITION not in decoded.table.column_names:
            self._undecoded.update(_last_offsets(decoded, messages))

    def decoded(self) -> Decoded:
        """The chunks as one decoded batch (rows and dead letters in message order)."""
        import pyarrow as pa

        from headwater.connectors.kafka.decode import Decoded

        dead = [letter for chunk in self._chunks for letter in chunk.dead]
        tables = [c.table for c in self._chunks if c.table.num_columns]
        if not tables:
            return Decoded(pa.table({}), dead)
        return Decoded(tables[0] if len(tables) == 1 else pa.concat_tables(tables), dead)

    def last_offsets(self, decoded: Decoded) -> dict[int, int]:
        """The last offset of each partition in the batch (``decoded``: :meth:`decoded`)."""
        last = dict(self._undecoded)
        for partition, offset in _last_offsets(decoded, []).items():
            last[partition] = max(last.get(partition, offset), offset)
        return last


def _last_offsets(decoded: Decoded, messages: list[Any]) -> dict[int, int]:
    """The last offset of each partition in a batch. Every message became a row or a dead
    letter, so the decoded rows' offset column and the letters give it without a pass over
    the messages (which remains for a batch decoded before any schema was known)."""
    table = decoded.table
    last: dict[int, int] = {}
    if KAFKA_PARTITION not in table.column_names:
        for message in messages:
            last[message.partition()] = message.offset()
        return last
    if table.num_rows:
        grouped = (
            table.select([KAFKA_PARTITION, KAFKA_OFFSET])
            .group_by(KAFKA_PARTITION)
            .aggregate([(KAFKA_OFFSET, "max")])
        )
        last = dict(
            zip(
                grouped.column(KAFKA_PARTITION).to_pylist(),
                grouped.column(f"{KAFKA_OFFSET}_max").to_pylist(),
                strict=True,
            )
        )
    for letter in decoded.dead:
        last[letter.partition] = max(last.get(letter.partition, letter.offset), letter.offset)
    return last


def _schema_from_text(text: str) -> pa.Schema:
    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def run_streams(
    project: ProjectConfig, views: list[FeatureView], options: StreamOptions
) -> list[StreamStats]:
    """Run one worker per view, each in its own thread with its own stores; return their totals.

    The first worker to fail stops the others and its error is raised.
    """
    from headwater.engines import open_engine
    from headwater.stores.offline import open_offline_store
    from headwater.stores.online import open_online_store
    from headwater.stores.registry import Registry

    results: dict[str, StreamStats] = {}
    errors: list[BaseException] = []

    def work(view: FeatureView) -> None:
        registry = online = None
        try:
            registry = Registry.open(project)
            online = open_online_store(project) if view.online else None
            worker = StreamWorker(
                project,
                view,
                registry,
                open_offline_store(project),
                online,
                open_engine(project).connect,
                options,
            )
            results[view.name] = worker.run()
        except BaseException as exc:
            errors.append(exc)
            options.stop.set()
        finally:
            if online is not None:
                online.close()
            if registry is not None:
                registry.close()

    if len(views) == 1:
        work(views[0])
    else:
        threads = [
            threading.Thread(target=work, args=(v,), name=f"stream-{v.name}", daemon=True)
            for v in views
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    if errors:
        raise errors[0]
    return [results[v.name] for v in views if v.name in results]
