"""One contestant, every payload: saturation, fixed rate, concurrency 1, CPU, memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.contestants import Running
from bench.loadgen import (
    SATURATION_CONNECTIONS,
    Latencies,
    Target,
    paced_latencies,
    saturation,
)
from bench.procstat import TreeUsage


@dataclass(frozen=True)
class Durations:
    warmup: float = 1.0
    saturation: float = 3.0
    fixed_rate: float = 3.0
    single: float = 2.0


@dataclass(frozen=True)
class FixedRate:
    """The paced run: ``clients`` connections, each at ``rps_per_client``."""

    clients: int
    rps_per_client: float
    # Connections of the saturation run of the same payload.
    saturation_connections: int = SATURATION_CONNECTIONS

    @property
    def total_rps(self) -> float:
        return self.clients * self.rps_per_client


@dataclass(frozen=True)
class PayloadResult:
    contestant: str
    payload: str
    workers: int
    rps: float
    errors: int
    cpu_per_10k: float | None
    fixed: Latencies
    fixed_target_rps: float
    single: Latencies


@dataclass(frozen=True)
class ContestantResult:
    name: str
    rows: list[PayloadResult]
    peak_rss_mib: list[float]  # one per serving process


def body_file(bodies: Path, payload: str, grpc: bool) -> Path:
    return bodies / f"{payload}.{'grpc' if grpc else 'json'}"


def measure(
    running: Running,
    bodies: Path,
    payloads: list[str],
    rates: dict[str, FixedRate],
    durations: Durations,
) -> ContestantResult:
    usage = TreeUsage(running.pid) if running.pid else None
    rows = []
    for payload in payloads:
        target = Target(
            running.url, body_file(bodies, payload, running.grpc), running.grpc, running.headers
        )
        rate = rates[payload]
        connections = rate.saturation_connections
        saturation(target, durations.warmup, connections)
        cpu_before = usage.cpu_seconds() if usage else 0.0
        throughput = saturation(target, durations.saturation, connections)
        cpu = usage.cpu_seconds() - cpu_before if usage else None
        fixed = paced_latencies(
            target, durations.fixed_rate, clients=rate.clients, rps_per_client=rate.rps_per_client
        )
        single = paced_latencies(target, durations.single, clients=1, rps_per_client=None)
        cpu_per_10k = (
            cpu / throughput.requests * 10_000 if cpu is not None and throughput.requests else None
        )
        rows.append(
            PayloadResult(
                running.name,
                payload,
                running.workers,
                throughput.rps,
                throughput.errors + fixed.errors + single.errors,
                cpu_per_10k,
                fixed,
                rate.total_rps,
                single,
            )
        )
        print(
            f"  {running.name:<24} {payload:<6} {throughput.rps:9.0f} rps  "
            f"fixed p99 {fixed.percentile(99):7.2f} ms @ {fixed.achieved_rps:.0f}/s  "
            f"c1 p50 {single.percentile(50):6.3f} ms",
            flush=True,
        )
    rss = usage.worker_peak_rss_mib() if usage else []
    return ContestantResult(running.name, rows, rss)
