"""Prometheus metrics of the gateway, summed over every worker.

Workers are processes, and a scrape reaches one of them at random; so with
several workers the counters and histograms live in prometheus-client's
multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor
before it starts the workers) and ``/metrics`` adds them up. State (gauges:
xDS connection, endpoint health, in-flight requests, process figures) is
published by each worker in the same directory instead
(gateway.metrics_state), so a series disappears when what it describes does.

Names follow OpenTelemetry's HTTP and RPC semantic conventions where they
have one (``http.server.request.duration`` ->
``meshgate_http_server_request_duration_seconds``) and Envoy's statistics
otherwise; docs/observability.md has the table. Every label value comes from
the config, xDS or a small fixed set, never from a request.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway.errors import Code
from gateway.exchange import Exchange

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds; the gateway's own work is sub-millisecond, so the low end is fine.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Endpoint label values per cluster (first come, first kept); the rest of a
# big EDS cluster's endpoints are counted under OTHER_ENDPOINT.
MAX_ENDPOINTS_PER_CLUSTER = 100
OTHER_ENDPOINT = "other"
NO_ROUTE = "(none)"
# An attempt the gateway gave up on before the upstream answered.
NO_STATUS = "NO_STATUS"

# -- downstream (the listeners) ----------------------------------------------

SERVER_REQUESTS = Counter(
    "meshgate_http_server_requests_total",
    "HTTP requests answered, by listener, route name and HTTP status code",
    ["listener", "route", "status_code"],
)
SERVER_DURATION = Histogram(
    "meshgate_http_server_request_duration_seconds",
    "Time from request head to the end of the response, by listener, route"
    " and status class (2xx, 4xx, 5xx)",
    ["listener", "route", "status_class"],
    buckets=BUCKETS,
)

# -- upstream (clusters and endpoints) ---------------------------------------

CLIENT_REQUESTS = Counter(
    "meshgate_rpc_client_requests_total",
    "Upstream attempts, by cluster, endpoint and the gRPC status they ended with",
    ["cluster", "endpoint", "grpc_status"],
)
CLIENT_DURATION = Histogram(
    "meshgate_rpc_client_call_duration_seconds",
    "Time of each upstream attempt, by cluster and endpoint",
    ["cluster", "endpoint"],
    buckets=BUCKETS,
)
TIMEOUTS = Counter(
    "meshgate_upstream_timeouts_total",
    "Upstream attempts that ended DEADLINE_EXCEEDED, by cluster",
    ["cluster"],
)
OVERFLOWS = Counter(
    "meshgate_upstream_overflow_total",
    "Requests or retries refused by a circuit breaker, by cluster and breaker"
    " (max_requests, retries: the retry budget or max_retries)",
    ["cluster", "breaker"],
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

# -- control plane and config ------------------------------------------------

XDS_UPDATES = Counter(
    "meshgate_xds_updates_total",
    "xDS responses answered, by type URL and result (ack, nack)",
    ["type_url", "result"],
)
CONFIG_RELOADS = Counter(
    "meshgate_config_reloads_total",
    "Config reloads, by result (ok, rejected); each worker reloads for itself",
    ["result"],
)


# labels() builds and locks on every call; each worker sees few label sets,
# so their children are looked up once and kept here.
_server: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_client: dict[tuple[str, str, int | None], tuple[Any, Any, Any]] = {}
_endpoints: dict[str, set[str]] = {}


def observe(exchange: Exchange) -> None:
    """Count one finished request and each of its upstream attempts."""
    key = (exchange.listener, exchange.route, exchange.status)
    server = _server.get(key)
    if server is None:
        server = _server[key] = _server_children(*key)
    server[0].inc()
    server[1].observe(exchange.seconds)
    if exchange.attempts:
        cluster = exchange.cluster
        for attempt in exchange.attempts:
            attempt_key = (cluster, attempt.endpoint, attempt.grpc_status)
            client = _client.get(attempt_key)
            if client is None:
                client = _client[attempt_key] = _client_children(*attempt_key)
            client[0].inc()
            client[1].observe(attempt.seconds)
            if client[2] is not None:
                client[2].inc()


def _server_children(listener: str, route: str, status: int) -> tuple[Any, Any]:
    route = route or NO_ROUTE
    code = str(status) if 100 <= status <= 599 else "other"
    status_class = f"{status // 100}xx" if 100 <= status <= 599 else "other"
    return (
        SERVER_REQUESTS.labels(listener, route, code),
        SERVER_DURATION.labels(listener, route, status_class),
    )


def _client_children(cluster: str, endpoint: str, grpc_status: int | None) -> tuple[Any, Any, Any]:
    endpoint = endpoint_label(cluster, endpoint)
    return (
        CLIENT_REQUESTS.labels(cluster, endpoint, grpc_status_label(grpc_status)),
        CLIENT_DURATION.labels(cluster, endpoint),
        TIMEOUTS.labels(cluster) if grpc_status == Code.DEADLINE_EXCEEDED else None,
    )


def endpoint_label(cluster: str, endpoint: str) -> str:
    """The endpoint's own address for the first MAX_ENDPOINTS_PER_CLUSTER
    endpoints a worker sees in a cluster, OTHER_ENDPOINT for the rest."""
    seen = _endpoints.setdefault(cluster, set())
    if endpoint in seen:
        return endpoint
    if len(seen) < MAX_ENDPOINTS_PER_CLUSTER:
        seen.add(endpoint)
        return endpoint
    return OTHER_ENDPOINT


def grpc_status_label(code: int | None) -> str:
    if code is None:
        return NO_STATUS
    try:
        return Code(code).name
    except ValueError:
        return Code.UNKNOWN.name


# -- events counted where they happen ----------------------------------------


def count_health_event(cluster: str, kind: str, reason: str) -> None:
    HEALTH_EVENTS.labels(cluster, kind, reason).inc()
    if kind == "ejected":
        OUTLIER_EJECTIONS.labels(cluster, reason).inc()


def count_retry(cluster: str, sent: bool) -> None:
    (RETRIES if sent else RETRY_OVERFLOW).labels(cluster).inc()
    if not sent:
        OVERFLOWS.labels(cluster, "retries").inc()


def count_overflow(cluster: str) -> None:
    """A request refused by the cluster's max_requests circuit breaker."""
    OVERFLOWS.labels(cluster, "max_requests").inc()


def count_xds_update(type_url: str, accepted: bool) -> None:
    XDS_UPDATES.labels(type_url, "ack" if accepted else "nack").inc()


def count_reload(accepted: bool) -> None:
    CONFIG_RELOADS.labels("ok" if accepted else "rejected").inc()


# -- exposition --------------------------------------------------------------

# The collector of this worker's state gauges (gateway.metrics_state), once
# the worker has one.
_state: Collector | None = None


def set_state_collector(collector: Collector | None) -> None:
    global _state
    _state = collector


def exposition() -> tuple[bytes, str]:
    if os.environ.get(MULTIPROC_ENV):
        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
        counted: Collector = shared
    else:
        counted = REGISTRY
    sources = (counted,) if _state is None else (counted, _state)
    return generate_latest(_Chain(sources)), CONTENT_TYPE_LATEST


class _Chain:
    """Several collectors exposed as one."""

    def __init__(self, sources: tuple[Collector, ...]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source.collect()
