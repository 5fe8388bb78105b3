"""The tests' own OTLP/gRPC trace receiver: opentelemetry-proto's TraceService,
served by grpcio on loopback, keeping every span it is sent.

    with otlp_receiver() as receiver:
        ...  # point tracing.otlp.endpoint at receiver.endpoint
        spans = receiver.wait_for(lambda spans: len(spans) >= 2)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.support.net import free_port


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, ids as hex as they travel in traceparent."""

    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    name: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind: 2 SERVER, 3 CLIENT
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    resource: dict[str, Any]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


@dataclass
class OtlpReceiver:
    endpoint: str
    # False: only count the spans (a sink for the benchmark).
    keep_spans: bool = True
    spans: list[ReceivedSpan] = field(default_factory=list)
    exports: int = 0
    received: int = 0  # spans, kept or not
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        if not self.keep_spans:
            count = sum(
                len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
            )
            with self._lock:
                self.received += count
                self.exports += 1
            return
        found = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes=_attributes(span.attributes),
                            status_code=span.status.code,
                            resource=resource,
                        )
                    )
        with self._lock:
            self.spans.extend(found)
            self.received += len(found)
            self.exports += 1

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def wait_for(
        self, enough: Callable[[list[ReceivedSpan]], bool], timeout: float = 30.0
    ) -> list[ReceivedSpan]:
        """The spans once ``enough`` says so; fails after ``timeout`` with what came."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.snapshot()
            if enough(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"spans did not arrive within {timeout}s; got {spans}")
            time.sleep(0.1)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.snapshot() if s.trace_id == trace_id]


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(  # the RPC's name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._receiver.take(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@contextmanager
def otlp_receiver(keep_spans: bool = True) -> Iterator[OtlpReceiver]:
    port = free_port()
    receiver = OtlpReceiver(f"127.0.0.1:{port}", keep_spans)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(receiver), server)
    server.add_insecure_port(receiver.endpoint)
    server.start()
    try:
        yield receiver
    finally:
        server.stop(grace=0.5).wait()
