"""What tracing costs: meshgate w1 without tracing, then with every request traced.

Tracing on: ``tracing.otlp`` pointed at a local OTLP/gRPC sink (the tests'
receiver, counting spans, in the benchmark's own process so that its CPU is
not charged to meshgate), ``sampling: 1.0``: one server and one client span
per request, exported by the SDK's batch processor. The ratio of the two
rows is the cost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.contestants import ECHO_PATH, SERVICE, Running, backend_port, meshgate, meshgate_config
from bench.measure import ContestantResult, Durations, FixedRate, measure
from gateway.config.model import OtlpConfig
from gateway.exchange import Exchange
from gateway.tracing.otlp import OtlpExporter
from gateway.tracing.tracer import Tracer
from gateway.upstream.call import Call
from tests.support.otlp_receiver import OtlpReceiver, otlp_receiver

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


@contextmanager
def traced_meshgate(backend: Running, sink: OtlpReceiver) -> Iterator[Running]:
    config = meshgate_config(backend_port(backend))
    config["tracing"] = {
        "otlp": {"endpoint": sink.endpoint, "schedule_delay": "1s"},
        "sampling": 1.0,
    }
    with meshgate(
        backend_port(backend), 1, "meshgate w1 tracing sampling 1.0", config=config
    ) as running:
        yield running


def run_tracing_cost(
    backend: Running, bodies: Path, rates: dict[str, FixedRate], durations: Durations
) -> TracingCost:
    results = []
    with meshgate(backend_port(backend), 1, "meshgate w1 tracing off") as gateway:
        results.append(measure(gateway, bodies, list(PAYLOADS), rates, durations))
    with otlp_receiver(keep_spans=False) as sink, traced_meshgate(backend, sink) as gateway:
        results.append(measure(gateway, bodies, list(PAYLOADS), rates, durations))
    return TracingCost(results, sink.received, in_process_micros())


def rows(cost: TracingCost) -> list[list[str]]:
    out = []
    base_result = cost.results[0]
    for payload in PAYLOADS:
        base = next(r for r in base_result.rows if r.payload == payload)
        for result in cost.results:
            row = next(r for r in result.rows if r.payload == payload)
            other = result is not base_result
            out.append(
                [
                    payload,
                    result.name.removeprefix("meshgate w1 "),
                    report.fmt(row.rps, 0) + (f" ({row.errors} errors)" if row.errors else ""),
                    report.ratio(row.rps, base.rps) if other else "—",
                    report.triple(row.fixed),
                    report.fmt(row.single.percentile(50), 3),
                    report.ratio(row.single.percentile(50), base.single.percentile(50))
                    if other
                    else "—",
                    report.fmt(row.cpu_per_10k),
                    report.ratio(row.cpu_per_10k, base.cpu_per_10k) if other else "—",
                ]
            )
    return out


def lines(cost: TracingCost | None) -> list[str]:
    if cost is None:
        return []
    return [
        "## Tracing cost (meshgate w1, Go backend)",
        "",
        "The same config without and with `tracing: {otlp: {endpoint: <local sink>}, "
        "sampling: 1.0}`: every request traced, a server span and a client span each, "
        "exported over OTLP/gRPC to a sink in the benchmark process (its CPU is not "
        f"meshgate's). Spans the sink received: {cost.spans_exported:,}.",
        "",
        report.table(HEADER, rows(cost)),
        "",
        "On the request path alone, in process (`python -m bench.tracing_cost`): "
        f"{report.fmt(cost.micros[1] - cost.micros[0], 1)} µs per request to continue a trace "
        "and propagate it to one attempt, "
        f"{report.fmt(cost.micros[2] - cost.micros[0], 1)} µs with both spans built and queued "
        "for export.",
        "",
    ]


if __name__ == "__main__":
    off, propagation, exported = in_process_micros()
    print(
        f"per request, in process: {propagation - off:.1f} us propagation only, "
        f"{exported - off:.1f} us with spans exported (baseline {off:.1f} us)"
    )
