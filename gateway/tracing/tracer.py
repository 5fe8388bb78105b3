"""A worker's tracer: one :class:`RequestTrace` per request while tracing is on.

The app asks the tracer to :meth:`Tracer.begin` each request (continue the
caller's trace or start one, pick the server span's id, decide sampling);
the invoker asks the request's trace for each attempt's call, which gets
its own client span id in the ``traceparent`` sent upstream; the app hands
the finished exchange back, and the spans are exported from it afterwards.

Span ids are made here, not by the OpenTelemetry SDK, because each attempt's
id must be on the wire before the attempt is sent, and the spans can only
be complete (status, end time) once the request is. The exporter
(:mod:`gateway.tracing.otlp`) builds the spans after the response with these
ids and the Exchange's own times, so what the backend sees as its parent is
exactly the client span exported.

With tracing off there is no tracer and no RequestTrace: the request path
pays one None check in the app and one in the invoker.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gateway.exchange import Attempt, Exchange
from gateway.tracing.context import (
    RANDOM_TRACE_ID,
    SAMPLED,
    TRACEPARENT,
    TRACESTATE,
    TraceParent,
    format_traceparent,
    incoming,
    new_span_id,
    new_trace_id,
    ratio_bound,
    sampled_by_ratio,
)
from gateway.upstream.call import Call, Metadata

if TYPE_CHECKING:
    from gateway.config.model import TracingConfig

_TRACE_HEADERS = frozenset({TRACEPARENT, TRACESTATE})


@dataclass(frozen=True, slots=True)
class ClientSpan:
    """One upstream attempt, as its span will be exported."""

    span_id: str
    attempt: Attempt
    service: str
    method: str


@dataclass(slots=True)
class RequestTrace:
    """The trace context of one request, and its attempts' span ids."""

    exporter: SpanExporter | None
    trace_id: str
    span_id: str  # the server span's: the parent of every attempt's span
    parent: TraceParent | None  # the caller's span, when the trace was continued
    flags: int
    tracestate: str
    server_port: int | None = None
    client_address: str | None = None
    http_version: str = ""
    client_spans: list[ClientSpan] = field(default_factory=list)

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def attempt_call(self, call: Call, attempt: Attempt) -> Call:
        """The call as this attempt sends it: its own span id in ``traceparent``."""
        span_id = new_span_id(_rng)
        self.client_spans.append(ClientSpan(span_id, attempt, call.service, call.method))
        # Built field by field: dataclasses.replace costs several times more, on
        # every attempt (test_trace_context checks that no field is left out).
        return Call(
            call.service,
            call.method,
            call.messages,
            self._metadata(call.metadata, span_id),
            call.client_streaming,
            call.server_streaming,
            call.dubbo,
            call.max_reply_bytes,
        )

    def _metadata(self, metadata: Metadata, span_id: str) -> Metadata:
        # What the client sent under these names is replaced, not repeated.
        kept = tuple(m for m in metadata if m[0] not in _TRACE_HEADERS)
        ours: Metadata = ((TRACEPARENT, format_traceparent(self.trace_id, span_id, self.flags)),)
        if self.tracestate:
            ours = (*ours, (TRACESTATE, self.tracestate))
        return (*kept, *ours)

    def finish(self, exchange: Exchange) -> None:
        """The request is over: export its spans (when sampled and exported)."""
        if self.exporter is not None and self.sampled:
            self.exporter.export(self, exchange)


class SpanExporter(Protocol):
    """Where finished, sampled traces go (gateway.tracing.otlp)."""

    def export(self, trace: RequestTrace, exchange: Exchange) -> None: ...

    def close(self) -> None: ...


# Span and trace ids need to be unique, not secret (OpenTelemetry's own
# generator uses the same Mersenne Twister).
_rng = random.Random()


class Tracer:
    def __init__(self, sampling: float, exporter: SpanExporter | None = None) -> None:
        self._bound = ratio_bound(sampling)
        self.exporter = exporter

    def begin(
        self,
        exchange: Exchange,
        headers: Sequence[tuple[str, str]],
        server_port: int | None = None,
        client_address: str | None = None,
        http_version: str = "",
    ) -> RequestTrace:
        """Continue the request's trace or start one; the exchange gets it."""
        found = incoming(headers)
        parent = found.parent
        if parent is not None:
            trace_id = parent.trace_id
            # Parent-based: the caller decided; its random-id flag goes on too.
            flags = parent.flags & (SAMPLED | RANDOM_TRACE_ID)
        else:
            trace_id = new_trace_id(_rng)
            flags = SAMPLED if sampled_by_ratio(trace_id, self._bound) else 0
        trace = RequestTrace(
            self.exporter,
            trace_id,
            new_span_id(_rng),
            parent,
            flags,
            found.tracestate,
            server_port,
            client_address,
            http_version,
        )
        exchange.trace = trace
        exchange.trace_id = trace_id
        return trace

    def close(self) -> None:
        """Flush what is queued and stop exporting (blocking: call off the loop)."""
        exporter, self.exporter = self.exporter, None
        if exporter is not None:
            exporter.close()


def build_tracer(config: TracingConfig | None) -> Tracer | None:
    """The worker's tracer for the config's ``tracing`` section (None: off)."""
    if config is None:
        return None
    exporter = None
    if config.otlp is not None:
        from gateway.tracing.otlp import OtlpExporter

        exporter = OtlpExporter(config.otlp, config.service_name)
    return Tracer(config.sampling, exporter)
