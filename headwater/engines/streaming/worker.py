"""A streaming worker: one feature view computed from its Kafka topic, micro-batch by micro-batch.

A worker joins the view's consumer group, so several workers (threads of one process, or
processes and pods) share the topic's partitions. Each micro-batch goes through the same steps:

1. gather and decode the messages, chunk by chunk (:mod:`.batches`; bad ones become dead
   letters);
2. compute its effects (:mod:`.compute`): the source's checks and the view's row-level cleaning
   steps on the events, then the fold into the window state of their partition (:mod:`.state`;
   late ones become dead letters) and the windows the watermark closes (:mod:`.watermarks`),
   or the projection (views without aggregations); the view's checks on the rows out;
3. write the rows to the offline and online stores (:mod:`.writes`, in threads while the next
   batch is gathered) and the dead letters to their sink (:mod:`.dead_letters`);
4. commit, in one registry transaction, each partition's next offset with its window state
   (:mod:`.checkpoint`) — once the writes of step 3 finished.

Step 3 is idempotent and step 4 atomic and fenced, so a worker killed at any point and
restarted — or replaced by another after a rebalance — replays from the last commit and ends
in exactly the state of an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headwater.definitions.kafka import KAFKA_TIMESTAMP, KafkaSource
from headwater.engines.streaming import checkpoint as checkpoints
from headwater.engines.streaming.batches import Gatherer, MicroBatch
from headwater.engines.streaming.collector import collector
from headwater.engines.streaming.compute import BatchCompute
from headwater.engines.streaming.options import StreamOptions, StreamStats
from headwater.engines.streaming.watermarks import PartitionProgress, Watermarks, caught_up
from headwater.engines.streaming.writes import StoreWrites
from headwater.errors import ConfigError, DefinitionError, HeadwaterError
from headwater.observability import get_logger, metrics

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.connectors.kafka.letters import DeadLetter
    from headwater.definitions import FeatureView
    from headwater.engines.streaming.dead_letters import DeadLetterSink
    from headwater.engines.streaming.state import WindowState
    from headwater.stores.offline.base import OfflineStore
    from headwater.stores.online.base import OnlineStore
    from headwater.stores.registry import Registry, StreamPartition
    from headwater.transforms.statistics import Statistics

log = get_logger("stream")

ASSIGN_TIMEOUT_S = 120.0
"""A worker never given a partition in this long fails (``--until-caught-up``)."""
IDLE_MEMBER_S = 15.0
"""A worker never given a partition waits this long before it stops on the strength of the
other workers' committed progress: leaving a group in the middle of a join can stall it."""


class StreamWorker:
    """Computes one view from its Kafka topic until stopped (or caught up).

    Args:
        project: the project's configuration.
        view: a view over a :class:`KafkaSource`.
        registry: where checkpoints (offsets + window state) are committed.
        offline: the offline store.
        online: the online store (``None``: the view is not written online).
        connect: opens the DuckDB connection the worker computes in.
        options: how it runs.
        statistics: the fitted statistics of the view's cleaning steps (see
            :mod:`headwater.orchestration.fitting`).
    """

    def __init__(
        self,
        project: ProjectConfig,
        view: FeatureView,
        registry: Registry,
        offline: OfflineStore,
        online: OnlineStore | None,
        connect: Callable[[], duckdb.DuckDBPyConnection],
        options: StreamOptions | None = None,
        statistics: Statistics | None = None,
    ) -> None:
        from headwater.connectors.kafka.client import kafka_connection
        from headwater.connectors.kafka.decode import Decoder
        from headwater.transforms.runtime import StreamTransforms

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
        self.options = options or StreamOptions()
        self.conn = kafka_connection(project, source.connection, f"source {source.name!r}")
        self.decoder = Decoder(
            source,
            self.conn,
            schema=checkpoints.load_schema(registry, view.name),
            message_time=_reads_message_time(view),
        )
        self.con = connect()
        self._fingerprint: str | None = None
        self.clock = Watermarks(
            source.lateness_ms(),
            source.idle_timeout_ms() / 1000,
            ignore_idle=self.options.until_caught_up,
        )
        self.stats = StreamStats(view=view.name)
        self.compute = BatchCompute(
            view,
            self.con,
            offline,
            # Refuses steps without a per-micro-batch meaning.
            StreamTransforms(view, con=self.con, statistics=statistics),
            self.clock,
            self.stats,
        )
        self.checkpoints = checkpoints.Checkpoints(registry, view.name, source.topic)
        self.writes = StoreWrites(view, offline, online if view.online else None, registry)
        self.dead = self._dead_letter_sink()
        self.gatherer = Gatherer(
            self.decoder,
            self.compute.suspects,
            max_messages=self.options.max_batch_messages,
            max_wait_s=self.options.max_batch_wait_s,
            view=view.name,
        )
        self._pending_restore: dict[int, StreamPartition] = {}
        self._assigned_once = False
        self._end_offsets: dict[int, int] = {}
        self._unsettled = False  # the last micro-batch is not committed yet
        if self.decoder.schema is not None:
            self._ensure_state(self.decoder.schema)

    @property
    def owned(self) -> dict[int, PartitionProgress]:
        """The partitions this worker owns and what it knows of them."""
        return self.clock.partitions

    @property
    def state(self) -> WindowState | None:
        """The view's window state (``None``: a projection, or no event decoded yet)."""
        return self.compute.state

    # ------------------------------------------------------------------ setup
    def _dead_letter_sink(self) -> DeadLetterSink:
        from headwater.engines.streaming.dead_letters import TableDeadLetters, TopicDeadLetters

        if self.source.dead_letter_topic:
            return TopicDeadLetters(self.conn, self.source.dead_letter_topic)
        return TableDeadLetters(self.offline, self.view.name)

    def _ensure_state(self, schema: pa.Schema) -> None:
        if self.view.kind != "aggregation" or self.state is not None:
            return
        state = self.compute.start_state(schema)
        self._fingerprint = checkpoints.fingerprint(self.view, state.agg.schema)
        for partition, saved in self._pending_restore.items():
            self.checkpoints.restore(state, partition, saved, self._fingerprint)
        self._pending_restore.clear()

    # ------------------------------------------------------------------ run
    def run(self, run_id: str = "") -> StreamStats:
        """Consume until stopped (or caught up); return the totals. ``run_id`` names the run
        in the dead letters, quarantined rows and checkpoints it writes."""
        from confluent_kafka import Consumer

        from headwater.connectors.kafka.client import consumer_config, end_offsets

        options = self.options
        self.stats.run_id = run_id
        consumer = Consumer(
            consumer_config(self.conn, group_id=self.source.group_id(self.view.name))
        )
        collector.start()
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
                batch = self.gatherer.next_batch(consumer)
                if batch.count:
                    self._process(consumer, batch)
                elif self.owned:
                    self._tick(consumer)
                del batch
                collector.batch_done()
                if options.until_caught_up:
                    done = self._finished(consumer, time.monotonic() - started)
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
        finally:
            collector.stop()
            self.writes.close()  # after a failure: the unfinished writes end first
            consumer.close()
        return self.stats

    def _finished(self, consumer: Any, waited: float) -> bool:
        """``--until-caught-up``: whether to stop now."""
        if (self._assigned_once or waited > IDLE_MEMBER_S) and self._caught_up(consumer):
            self._settle(consumer)  # then ask again: the commit may be refused
            if self._caught_up(consumer):
                return True
        if not self._assigned_once and waited > ASSIGN_TIMEOUT_S:
            raise HeadwaterError(
                f"view {self.view.name!r}: no partition of topic {self.source.topic!r} was "
                f"assigned within {ASSIGN_TIMEOUT_S:.0f}s",
                fix="check that the broker is reachable and the consumer group is not held by "
                "other workers",
            )
        return False

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
        saved = self.checkpoints.load(numbers)
        now = time.monotonic()
        for tp in partitions:
            tp.offset = self._take(tp.partition, saved.get(tp.partition), now)
        consumer.assign(partitions)
        self._assigned_once = True
        self.stats.partitions = self.clock.owned()
        log.info(
            "partitions assigned",
            extra={"fields": {"view": self.view.name, "partitions": numbers}},
        )

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._settle(consumer)  # what was read of them is committed before they go
        for tp in partitions:
            self.clock.release(tp.partition)
            self._pending_restore.pop(tp.partition, None)
            if self.state is not None:
                self.state.drop(tp.partition)
        consumer.unassign()
        self.stats.partitions = self.clock.owned()
        log.info(
            "partitions revoked",
            extra={
                "fields": {"view": self.view.name, "partitions": [t.partition for t in partitions]}
            },
        )

    def _take(self, partition: int, found: StreamPartition | None, now: float) -> int:
        """Own ``partition`` from its saved progress (``None``: from the beginning of the
        topic); return the offset to read from."""
        from confluent_kafka import OFFSET_BEGINNING

        offset = None if found is None else found.next_offset
        self.clock.own(partition, offset, None if found is None else found.meta.get("max_ts"), now)
        if self.state is not None:
            if found is None:
                self.state.restore(partition, None, None)
            else:
                self.checkpoints.restore(self.state, partition, found, self._fingerprint)
        elif found is not None and self.view.kind == "aggregation":
            self._pending_restore[partition] = found  # restored once the schema is known
        return OFFSET_BEGINNING if offset is None else offset

    def _reload(self, consumer: Any, partitions: list[int]) -> None:
        """After a refused commit: take the partitions' saved progress again and seek there."""
        from confluent_kafka import TopicPartition

        saved = self.checkpoints.load(partitions)
        now = time.monotonic()
        for partition in partitions:
            offset = self._take(partition, saved.get(partition), now)
            consumer.seek(TopicPartition(self.source.topic, partition, offset))

    def _caught_up(self, consumer: Any) -> bool:
        from confluent_kafka import TopicPartition

        def position(partition: int) -> int:
            found = consumer.position([TopicPartition(self.source.topic, partition)])
            return int(found[0].offset)

        return caught_up(
            self._end_offsets,
            self.owned,
            position=position,
            saved=self.checkpoints.load,
            lateness_ms=self.clock.lateness_ms,
            stateful=self.state is not None,
        )

    # ------------------------------------------------------------------ batches
    def _process(self, consumer: Any, batch: MicroBatch) -> None:
        self._settle(consumer)  # the previous batch's writes and commit
        started = time.perf_counter()
        decoded = batch.decoded()
        if self.decoder.schema is not None and self.state is None:
            checkpoints.save_schema(self.registry, self.view.name, self.decoder.schema)
            self._ensure_state(self.decoder.schema)
        now = time.monotonic()
        self.clock.consumed(batch.last_offsets(decoded))
        computed = self.compute.compute(decoded, batch.kept, batch.count, now)
        self._write(computed.rows, computed.dead)
        self._unsettled = True  # committed by _settle, once the writes finished
        name = self.view.name
        metrics.MESSAGES.labels(name).inc(batch.count)
        metrics.EVENTS.labels(name).inc(decoded.table.num_rows)
        metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)

    def _tick(self, consumer: Any) -> None:
        """No message arrived: idle partitions, or partitions just taken over with their saved
        state, may now let windows close."""
        self._settle(consumer)
        out = self.compute.close_quiet(time.monotonic())
        if out is not None:
            self._write(out, [])
            self._unsettled = True
            self._settle(consumer)

    # ------------------------------------------------------------------ effects
    def _write(self, rows: pa.Table | None, dead: list[DeadLetter]) -> None:
        """Start writing ``rows`` to the stores (see :mod:`.writes`) and write the dead
        letters."""
        if rows is not None and rows.num_rows:
            self.writes.submit(rows)
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
        try:
            self.writes.wait()
        except BaseException:
            self._unsettled = False  # nothing of the batch is committed: it is read again
            raise
        if self._unsettled:
            self._unsettled = False
            self._commit(consumer)

    def _commit(self, consumer: Any) -> None:
        from confluent_kafka import TopicPartition

        done = self.checkpoints.commit(
            self.owned, self.state, fingerprint=self._fingerprint, run_id=self.stats.run_id
        )
        if done.refused:
            log.warning(
                "partition moved to another worker; reloading",
                extra={"fields": {"view": self.view.name, "error": done.reason}},
            )
            self._reload(consumer, done.refused)
            return
        if not done.saved:
            return
        self.stats.batches += 1
        metrics.BATCHES.labels(self.view.name).inc()
        if self.stats.watermark_ms is not None:
            metrics.WATERMARK.labels(self.view.name).set(self.stats.watermark_ms)
        consumer.commit(
            offsets=[
                TopicPartition(self.source.topic, partition, offset)
                for partition, offset in done.saved.items()
            ],
            asynchronous=True,
        )
        if self.options.on_batch is not None:
            self.options.on_batch(self.stats)


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
