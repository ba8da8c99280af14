"""The streaming engine: feature views computed from Kafka topics in micro-batches, with the
batch engine's window semantics, per-partition watermarks and exactly-once effects.

=================  ==========================================================================
``worker``         :class:`StreamWorker`: group membership, the loop, writes and commits
``batches``        gathering a micro-batch, decoding it chunk by chunk
``compute``        what a micro-batch computes: checks, steps, fold or projection, closing
``state``          window state of partial aggregates per partition, in DuckDB
``aggregate``      the SQL of partial aggregates, their merge and finalisation
``watermarks``     per-partition progress; the watermark, idle and caught-up rules
``checkpoint``     the fenced commit of offsets + state; fingerprints; the decoded schema
``writes``         store writes in threads, beside the next batch
``dead_letters``   the dead-letter topic or side table
``collector``      garbage collection paced by micro-batches
``options``        :class:`StreamOptions`, :class:`StreamStats`
=================  ==========================================================================
"""
