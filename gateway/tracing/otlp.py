"""Spans of a finished request, exported over OTLP/gRPC by the OpenTelemetry SDK.

Needs the ``otel`` extra; imported only when ``tracing.otlp`` is configured.

One SERVER span per request and one CLIENT span per upstream attempt, with
the ids the tracer already put on the wire and the Exchange's own times.
They are built after the response as finished ``ReadableSpan`` records and
handed to the SDK's ``BatchSpanProcessor``, whose thread encodes and sends
them in batches: the request path only appends to its queue. The SDK's
sampler is not involved: the sampling decision was made when the request
arrived, since the sampled flag travels upstream with it.

Attributes follow OpenTelemetry's semantic conventions for HTTP servers and
RPC clients, plus ``meshgate.route`` and ``meshgate.cluster``.
"""

from __future__ import annotations

import logging
import time
from importlib.metadata import PackageNotFoundError, version

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from gateway.config.model import OtlpConfig, split_address
from gateway.exchange import Exchange
from gateway.tracing.tracer import ClientSpan, RequestTrace

# rpc.system by upstream protocol client: Triple and dubbo2 are Dubbo's.
_RPC_SYSTEMS = {"grpc": "grpc", "triple": "apache_dubbo", "triple-json": "apache_dubbo"}
_DUBBO = "apache_dubbo"
# The SDK warns once per span dropped from a full queue; a collector that is
# down would log every request. Once per this many seconds is enough.
_QUEUE_FULL_LOG_INTERVAL = 10.0


def _meshgate_version() -> str:
    try:
        return version("meshgate")
    except PackageNotFoundError:
        return "unknown"


class _OncePerInterval(logging.Filter):
    def __init__(self, interval: float) -> None:
        super().__init__()
        self._interval = interval
        self._next = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if "Queue full" not in record.getMessage():
            return True
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._interval
        return True


_queue_full_filter = _OncePerInterval(_QUEUE_FULL_LOG_INTERVAL)


class OtlpExporter:
    def __init__(self, config: OtlpConfig, service_name: str) -> None:
        exporter = OTLPSpanExporter(
            endpoint=config.endpoint,
            # A bare host:port is plaintext, as a collector's default 4317 is.
            insecure=not config.endpoint.startswith("https://"),
            headers=dict(config.headers) or None,
            timeout=config.timeout,
        )
        self._processor = BatchSpanProcessor(
            exporter,
            max_queue_size=config.max_queue_size,
            schedule_delay_millis=config.schedule_delay * 1000,
            max_export_batch_size=min(512, config.max_queue_size),
            export_timeout_millis=config.timeout * 1000,
        )
        meshgate = _meshgate_version()
        self._resource = Resource.create(
            {"service.name": service_name, "service.version": meshgate}
        )
        self._scope = InstrumentationScope("meshgate", meshgate)
        self._closed = False
        sdk_log = logging.getLogger("opentelemetry.sdk._shared_internal")
        if _queue_full_filter not in sdk_log.filters:
            sdk_log.addFilter(_queue_full_filter)

    def export(self, trace: RequestTrace, exchange: Exchange) -> None:
        if self._closed:
            return  # a reload replaced this exporter while the request ran
        processor = self._processor
        server = self._server_span(trace, exchange)
        processor.on_end(server)
        for client in trace.client_spans:
            processor.on_end(self._client_span(trace, exchange, client, server.context))

    def close(self) -> None:
        """Export what is queued (bounded by the export timeout), then stop."""
        self._closed = True
        self._processor.shutdown()  # type: ignore[no-untyped-call]

    def _context(self, trace: RequestTrace, span_id: str) -> SpanContext:
        return SpanContext(
            int(trace.trace_id, 16), int(span_id, 16), False, TraceFlags(trace.flags)
        )

    def _server_span(self, trace: RequestTrace, exchange: Exchange) -> ReadableSpan:
        parent = trace.parent
        remote = (
            None
            if parent is None
            else SpanContext(
                int(parent.trace_id, 16), int(parent.span_id, 16), True, TraceFlags(parent.flags)
            )
        )
        attributes: dict[str, AttributeValue] = {
            "http.request.method": exchange.method,
            "url.path": exchange.path,
            "http.response.status_code": exchange.status,
            "meshgate.listener": exchange.listener,
        }
        if exchange.route:
            attributes["meshgate.route"] = exchange.route
        if exchange.cluster:
            attributes["meshgate.cluster"] = exchange.cluster
        if trace.server_port is not None:
            attributes["server.port"] = trace.server_port
        if trace.client_address:
            attributes["client.address"] = trace.client_address
        if trace.http_version:
            attributes["network.protocol.version"] = trace.http_version
        if exchange.request_id:
            attributes["meshgate.request_id"] = exchange.request_id
        start = _epoch_ns(exchange, exchange.started)
        # Server spans are errors for 5xx only: a 4xx is the client's (HTTP semconv).
        status = Status(StatusCode.ERROR) if exchange.status >= 500 else Status(StatusCode.UNSET)
        return ReadableSpan(
            name=exchange.route or f"HTTP {exchange.method}",
            context=self._context(trace, trace.span_id),
            parent=remote,
            resource=self._resource,
            attributes=attributes,
            kind=SpanKind.SERVER,
            instrumentation_scope=self._scope,
            status=status,
            start_time=start,
            end_time=start + int(exchange.seconds * 1e9),
        )

    def _client_span(
        self, trace: RequestTrace, exchange: Exchange, client: ClientSpan, parent: SpanContext
    ) -> ReadableSpan:
        attempt = client.attempt
        attributes: dict[str, AttributeValue] = {
            "rpc.system": _RPC_SYSTEMS.get(exchange.upstream, _DUBBO),
            "rpc.service": client.service,
            "rpc.method": client.method,
            **_server_address(attempt.endpoint),
            "meshgate.cluster": exchange.cluster,
            "meshgate.upstream": exchange.upstream,
        }
        status = Status(StatusCode.UNSET)
        if attempt.grpc_status is not None:
            attributes["rpc.grpc.status_code"] = attempt.grpc_status
            if attempt.grpc_status != 0:
                status = Status(StatusCode.ERROR)
        start = _epoch_ns(exchange, attempt.started)
        return ReadableSpan(
            name=f"{client.service}/{client.method}",
            context=self._context(trace, client.span_id),
            parent=parent,
            resource=self._resource,
            attributes=attributes,
            kind=SpanKind.CLIENT,
            instrumentation_scope=self._scope,
            status=status,
            start_time=start,
            end_time=start + int(attempt.seconds * 1e9),
        )


def _server_address(endpoint: str) -> dict[str, AttributeValue]:
    try:
        host, port = split_address(endpoint)
    except ValueError:  # not host:port (a unix socket path)
        return {"server.address": endpoint}
    return {"server.address": host, "server.port": port}


def _epoch_ns(exchange: Exchange, perf_counter: float) -> int:
    """A perf_counter() reading of this request as nanoseconds since the epoch."""
    return int((exchange.wall_time + (perf_counter - exchange.started)) * 1e9)
