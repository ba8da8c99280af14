"""Gathering a micro-batch: messages taken from the consumer in chunks, each decoded as it is
taken.

A micro-batch holds up to ``max_batch_messages`` messages, gathered for at most
``max_batch_wait_s``, and closes early once the consumer's queue runs dry after the first
message: one large ``consume`` waits for the whole count (the queue refills only while the
fetcher gets to run), and gathering what is already fetched costs less and keeps latency low.

Each chunk is decoded as soon as it is taken and its message objects are let go, except those
that may still become dead letters when the batch is folded (late events, rows without a join
key): a micro-batch's hundreds of thousands of message objects are never alive at once (their
memory, allocated afresh for every batch, cost more than the decoding).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headwater.definitions.kafka import KAFKA_OFFSET, KAFKA_PARTITION
from headwater.observability import get_logger

if TYPE_CHECKING:
    from headwater.connectors.kafka.decode import Decoded, Decoder

log = get_logger("stream")

CHUNK = 10_000
"""Messages taken from the consumer's queue per call while a micro-batch is gathered."""
CHUNK_WAIT_S = 0.05
"""Longest wait for the queue to refill before a gathered micro-batch is processed."""

Suspects = Callable[["Decoded", list[Any]], list[Any]]
"""Which messages of a decoded chunk to keep, because folding may turn them into dead letters."""


class MicroBatch:
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


class Gatherer:
    """Takes micro-batches from a consumer (see the module docstring).

    Args:
        decoder: decodes each chunk of messages.
        suspects: picks the messages of a decoded chunk to keep for dead letters.
        max_messages: most messages in a batch.
        max_wait_s: longest wait for a batch to fill.
        view: the view's name, for log lines.
    """

    def __init__(
        self,
        decoder: Decoder,
        suspects: Suspects,
        *,
        max_messages: int,
        max_wait_s: float,
        view: str,
    ) -> None:
        self.decoder = decoder
        self.suspects = suspects
        self.max_messages = max_messages
        self.max_wait_s = max_wait_s
        self.view = view

    def next_batch(self, consumer: Any) -> MicroBatch:
        """The next micro-batch (empty when nothing arrived within ``max_wait_s``)."""
        wanted = self.max_messages
        chunk = min(CHUNK, wanted)
        deadline = time.monotonic() + self.max_wait_s
        batch = MicroBatch()
        taken = self._take_chunk(consumer, chunk, self.max_wait_s, batch)
        while taken and batch.count < wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            size = min(chunk, wanted - batch.count)
            if self._take_chunk(consumer, size, min(left, CHUNK_WAIT_S), batch) < size:
                break  # the queue ran dry
        return batch

    def _take_chunk(self, consumer: Any, size: int, timeout: float, batch: MicroBatch) -> int:
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
                    "kafka error", extra={"fields": {"view": self.view, "error": str(error)}}
                )
        del messages
        if good:
            decoded = self.decoder.decode(good)
            batch.add(decoded, good, self.suspects(decoded, good))
        return taken


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
