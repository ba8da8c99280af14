"""Prometheus metrics of the server, in a registry of its own (never the global one).

Request metrics are updated as requests are served. Per-view gauges are computed at scrape time
from the registry and the (briefly cached) ``FeatureStore.status()``:

=============================================== ==============================================
``headwater_view_info``                          1, labelled with shape, entity and source
``headwater_view_last_run_success``              1 if the last run succeeded, else 0
``headwater_view_last_run_timestamp_seconds``    when the last run ended (started, if running)
``headwater_view_last_run_duration_seconds``     how long the last (finished) run took
``headwater_view_last_run_rows_in`` / ``_out``   rows read / written by the last run
``headwater_view_offline_rows``                  rows in the offline store
``headwater_view_newest_event_timestamp_seconds`` event time of the newest offline row
``headwater_view_newest_event_age_seconds``      now minus that event time (freshness)
``headwater_view_quality_checks``                checks of the last run, by result (passed, warned,
                                                 quarantined, failed)
``headwater_view_quality_rows_failed``           rows that failed each check in the last run
``headwater_view_last_run_rows_quarantined``     rows the last run set aside
``headwater_status_up``                          0 when the status could not be read
=============================================== ==============================================
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from headwater.observability import get_logger

if TYPE_CHECKING:
    from headwater.server.state import ServerState

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_log = get_logger("headwater.server")


class ServerMetrics:
    """The server's metric objects and the registry that exposes them.

    Args:
        state: where the per-view gauges are read from at scrape time.
    """

    def __init__(self, state: ServerState) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "headwater_http_requests",
            "HTTP requests served, by method, endpoint (route template) and status code.",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "headwater_http_request_duration_seconds",
            "Time to serve an HTTP request, by method and endpoint.",
            ["method", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "headwater_http_errors",
            "Requests answered with an error, by endpoint and error class.",
            ["endpoint", "error"],
            registry=self.registry,
        )
        self.entity_rows = Counter(
            "headwater_online_entity_rows",
            "Entity rows looked up through POST /features/online.",
            registry=self.registry,
        )
        self.features_served = Counter(
            "headwater_online_features_served",
            "Feature values returned by POST /features/online, by feature view.",
            ["view"],
            registry=self.registry,
        )
        self.registry.register(ViewCollector(state))

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        """Record one served request."""
        self.requests.labels(method, endpoint, str(status)).inc()
        self.latency.labels(method, endpoint).observe(seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)


class ViewCollector(Collector):
    """Per-view gauges read from the store's status at scrape time."""

    def __init__(self, state: ServerState) -> None:
        self._state = state

    def describe(self) -> Iterable[Metric]:
        """Nothing: the views are only known at scrape time."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Gauges of every view; ``headwater_status_up`` is 0 if the status failed."""
        up = GaugeMetricFamily(
            "headwater_status_up", "1 if the feature store's status could be read, else 0."
        )
        try:
            statuses = self._state.status()
        except Exception:  # a failing store must not break the scrape of request metrics
            _log.exception("reading the feature store status for /metrics failed")
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        labels = ["view"]
        info = GaugeMetricFamily(
            "headwater_view_info",
            "Feature views of the project (always 1).",
            labels=["view", "shape", "entity", "source"],
        )
        success = GaugeMetricFamily(
            "headwater_view_last_run_success",
            "1 if the view's last run succeeded, else 0.",
            labels=labels,
        )
        run_ts = GaugeMetricFamily(
            "headwater_view_last_run_timestamp_seconds",
            "When the view's last run ended (or started, while it runs), in Unix seconds.",
            labels=labels,
        )
        run_duration = GaugeMetricFamily(
            "headwater_view_last_run_duration_seconds",
            "Duration of the view's last finished run.",
            labels=labels,
        )
        rows_in = GaugeMetricFamily(
            "headwater_view_last_run_rows_in", "Rows read by the view's last run.", labels=labels
        )
        rows_out = GaugeMetricFamily(
            "headwater_view_last_run_rows_out",
            "Rows written by the view's last run.",
            labels=labels,
        )
        offline_rows = GaugeMetricFamily(
            "headwater_view_offline_rows", "Rows of the view in the offline store.", labels=labels
        )
        newest = GaugeMetricFamily(
            "headwater_view_newest_event_timestamp_seconds",
            "Event time of the view's newest offline row, in Unix seconds.",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "headwater_view_newest_event_age_seconds",
            "Seconds between now and the event time of the view's newest offline row.",
            labels=labels,
        )
        checks = GaugeMetricFamily(
            "headwater_view_quality_checks",
            "Data-quality checks of the view's last run, by result.",
            labels=["view", "result"],
        )
        rows_failed = GaugeMetricFamily(
            "headwater_view_quality_rows_failed",
            "Rows that failed each data-quality check in the view's last run.",
            labels=["view", "check", "severity"],
        )
        quarantined = GaugeMetricFamily(
            "headwater_view_last_run_rows_quarantined",
            "Rows the view's last run set aside in its quarantine table.",
            labels=labels,
        )
        now = time.time()
        for status in statuses:
            for action in ("passed", "warned", "quarantined", "failed"):
                if status.quality:
                    count = sum(1 for r in status.quality if r.action == action)
                    checks.add_metric([status.name, action], count)
            for record in status.quality:
                rows_failed.add_metric(
                    [status.name, f"{record.stage}:{record.check}", record.severity],
                    record.rows_failed,
                )
            view = [status.name]
            info.add_metric([status.name, status.shape, status.entity, status.source], 1)
            offline_rows.add_metric(view, status.offline_rows)
            if isinstance(status.latest_event, datetime):
                newest.add_metric(view, status.latest_event.timestamp())
                age.add_metric(view, now - status.latest_event.timestamp())
            run = status.last_run
            if run is None:
                continue
            success.add_metric(view, 1 if run.status == "success" else 0)
            run_ts.add_metric(view, (run.ended_at or run.started_at).timestamp())
            if run.seconds is not None:
                run_duration.add_metric(view, run.seconds)
            rows_in.add_metric(view, run.rows_in)
            rows_out.add_metric(view, run.rows_out)
            quarantined.add_metric(view, int((run.details or {}).get("rows_quarantined", 0)))
        runs = [success, run_ts, run_duration, rows_in, rows_out, quarantined]
        return [up, info, *runs, offline_rows, newest, age, checks, rows_failed]
