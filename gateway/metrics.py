"""Prometheus metrics of the HTTP side, summed over every worker.

Workers are processes, and a scrape reaches one of them at random; so with
several workers the counters live in prometheus-client's multiprocess
directory (``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor before it
starts the workers) and ``/metrics`` adds them up.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "meshgate_requests_total",
    "HTTP requests answered, by listener and status",
    ["listener", "status"],
)
DURATION = Histogram(
    "meshgate_request_duration_seconds",
    "Time from request head to response, by listener",
    ["listener"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# labels() builds and locks on every call; the few (listener, status) pairs a
# worker sees are looked up once and kept.
_counters: dict[tuple[str, int], Any] = {}
_histograms: dict[str, Any] = {}


def observe(listener: str, status: int, seconds: float) -> None:
    counter = _counters.get((listener, status))
    if counter is None:
        counter = _counters[(listener, status)] = REQUESTS.labels(listener, str(status))
    histogram = _histograms.get(listener)
    if histogram is None:
        histogram = _histograms[listener] = DURATION.labels(listener)
    counter.inc()
    histogram.observe(seconds)


def exposition() -> tuple[bytes, str]:
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


HEALTH_EVENTS = Counter(
    "meshgate_endpoint_health_events_total",
    "Endpoint health changes, by cluster, kind (ejected, restored, unhealthy,"
    " healthy) and reason (the outlier check or the probe kind)",
    ["cluster", "kind", "reason"],
)
OUTLIER_EJECTIONS = Counter(
    "meshgate_outlier_ejections_total",
    "Endpoints ejected by outlier detection, by cluster and reason",
    ["cluster", "reason"],
)
RETRIES = Counter(
    "meshgate_upstream_retries_total",
    "Retry attempts sent, by cluster",
    ["cluster"],
)
RETRY_OVERFLOW = Counter(
    "meshgate_upstream_retry_overflow_total",
    "Retries not sent because the cluster's retry budget or max_retries was spent",
    ["cluster"],
)


def count_health_event(cluster: str, kind: str, reason: str) -> None:
    HEALTH_EVENTS.labels(cluster, kind, reason).inc()
    if kind == "ejected":
        OUTLIER_EJECTIONS.labels(cluster, reason).inc()


def count_retry(cluster: str, sent: bool) -> None:
    (RETRIES if sent else RETRY_OVERFLOW).labels(cluster).inc()
