"""What tracing adds to one request, in process: off, propagation only, and spans
exported (``python -m bench.tracing_cost``). The throughput cost of the whole
gateway is a row of the optional-features section (bench/feature_cost.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.contestants import ECHO_PATH, SERVICE
from bench.measure import ContestantResult
from gateway.config.model import OtlpConfig
from gateway.exchange import Exchange
from gateway.tracing.otlp import OtlpExporter
from gateway.tracing.tracer import Tracer
from gateway.upstream.call import Call
from tests.support.otlp_receiver import otlp_receiver

PAYLOADS = ("small",)
HEADER = (
    "payload",
    "meshgate w1",
    "RPS at saturation",
    "vs off",
    "fixed rate: p50 / p90 / p99 ms",
    "c=1 p50 ms",
    "c=1 vs off",
    "CPU s / 10k req",
    "CPU vs off",
)


@dataclass(frozen=True)
class TracingCost:
    results: list[ContestantResult]  # off, then on
    spans_exported: int
    # In process, per request: (off, propagation only, spans exported) microseconds.
    micros: tuple[float, float, float]


_HEADERS = [
    ("content-type", "application/json"),
    ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
]
_CALL = Call(SERVICE, "Echo", [b"{}"], (("x-request-id", "1"),))


def _trace_requests(tracer: Tracer | None, requests: int) -> float:
    """Microseconds per request of what tracing adds to one request and one attempt."""
    started = time.perf_counter()
    for _ in range(requests):
        exchange = Exchange("bench", "POST", ECHO_PATH)
        if tracer is not None:
            tracer.begin(exchange, _HEADERS, 8080, "127.0.0.1", "1.1")
        attempt = exchange.begin_attempt("127.0.0.1:50051")
        if exchange.trace is not None:
            exchange.trace.attempt_call(_CALL, attempt)
        attempt.grpc_status, attempt.seconds = 0, 0.001
        exchange.status, exchange.seconds, exchange.route = 200, 0.002, "rpc"
        exchange.cluster, exchange.upstream = "backend", "grpc"
        if exchange.trace is not None:
            exchange.trace.finish(exchange)
    return (time.perf_counter() - started) / requests * 1e6


def in_process_micros(requests: int = 20_000) -> tuple[float, float, float]:
    """The request path's share alone (the exporter thread's encoding is not in it)."""
    with otlp_receiver(keep_spans=False) as sink:
        off = _trace_requests(None, requests)
        propagation = _trace_requests(Tracer(1.0), requests)
        config = OtlpConfig(endpoint=sink.endpoint, schedule_delay=0.2, max_queue_size=2 * requests)
        exporter = OtlpExporter(config, "bench")
        exported = _trace_requests(Tracer(1.0, exporter), requests)
        exporter.close()
    return off, propagation, exported


if __name__ == "__main__":
    off, propagation, exported = in_process_micros()
    print(
        f"per request, in process: {propagation - off:.1f} us propagation only, "
        f"{exported - off:.1f} us with spans exported (baseline {off:.1f} us)"
    )
