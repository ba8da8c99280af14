"""Prometheus metrics of pipeline work in this process (runs and streaming workers), in a
registry of their own.

``headwater stream --metrics-port PORT`` serves them over HTTP (``/metrics``):

================================================ =============================================
``headwater_stream_messages_total``              messages consumed, by view
``headwater_stream_events_total``                events decoded into the view's input, by view
``headwater_stream_rows_out_total``              feature rows written, by view
``headwater_stream_dead_letters_total``          dead letters, by view and check (decode, schema,
                                                 timestamp, oversized, late)
``headwater_stream_late_events_total``           events whose windows had all closed, by view
``headwater_stream_batches_total``               committed micro-batches, by view
``headwater_stream_watermark_ms``                the worker's watermark (epoch ms), by view
``headwater_stream_batch_seconds``               time to process and commit one micro-batch
``headwater_runs_total``                         recorded runs that ended, by view, kind (run,
                                                 backfill, materialize, stream) and status
``headwater_run_seconds``                        how long recorded runs took, by view and kind
================================================ =============================================
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
MESSAGES = Counter("headwater_stream_messages", "Messages consumed.", ["view"], registry=REGISTRY)
EVENTS = Counter("headwater_stream_events", "Events decoded.", ["view"], registry=REGISTRY)
ROWS_OUT = Counter(
    "headwater_stream_rows_out", "Feature rows written.", ["view"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "headwater_stream_dead_letters",
    "Messages sent to the dead-letter sink, by check.",
    ["view", "check"],
    registry=REGISTRY,
)
LATE = Counter(
    "headwater_stream_late_events",
    "Events whose every window had already closed.",
    ["view"],
    registry=REGISTRY,
)
BATCHES = Counter(
    "headwater_stream_batches", "Committed micro-batches.", ["view"], registry=REGISTRY
)
WATERMARK = Gauge(
    "headwater_stream_watermark_ms",
    "The worker's watermark, epoch ms.",
    ["view"],
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "headwater_stream_batch_seconds",
    "Time to process and commit one micro-batch.",
    ["view"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

RUNS = Counter(
    "headwater_runs", "Recorded runs that ended.", ["view", "kind", "status"], registry=REGISTRY
)
RUN_SECONDS = Histogram(
    "headwater_run_seconds",
    "How long recorded runs took.",
    ["view", "kind"],
    registry=REGISTRY,
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0),
)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve the streaming metrics on ``http://host:port/metrics`` (a daemon thread)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=REGISTRY)
