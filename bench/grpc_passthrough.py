"""gRPC passthrough throughput and added latency: direct, through meshgate
(one worker, h2c) and through Envoy (one thread, HTTP/2 router), to the same
grpc.aio backend (tests/support/raw_grpc_backend.py).

    .venv/bin/python -m bench.grpc_passthrough [--seconds 5] [--concurrency 16]

Unary: a closed loop of ``concurrency`` grpc.aio callers on one channel for
``seconds``, 64-byte messages: calls/s and p50/p99 latency; plus p50 at
concurrency 1 (the added latency). Streaming: one server stream of 20,000
4 KiB replies, messages/s. Not part of ``make bench`` yet (bench/run.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

import grpc
import grpc.aio

from tests.support.envoy import _grpc_proxy_config, run_envoy
from tests.support.gateway import run_gateway
from tests.support.net import free_port
from tests.support.processes import python_module, running
from tests.support.raw_grpc_backend import SERVICE

PAYLOAD = b"x" * 64
STREAM_MESSAGES = 20_000


async def unary_loop(address: str, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(f"/{SERVICE}/Unary")
        for _ in range(50):  # warm the channel and the path
            await call(PAYLOAD)
        latencies: list[float] = []
        stop = time.perf_counter() + seconds

        async def caller() -> None:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                await call(PAYLOAD)
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return len(latencies) / (time.perf_counter() - began), latencies


async def stream_rate(address: str) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        began = time.perf_counter()
        count = 0
        async for _ in channel.unary_stream(f"/{SERVICE}/Flood")(str(STREAM_MESSAGES).encode()):
            count += 1
        assert count == STREAM_MESSAGES
        return count / (time.perf_counter() - began)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


@contextmanager
def contestants(backend_port: int) -> Iterator[dict[str, str]]:
    with ExitStack() as stack, TemporaryDirectory() as tmp:
        gateway_address = f"127.0.0.1:{free_port()}"
        config = {
            "listeners": [
                {
                    "name": "rpc",
                    "address": gateway_address,
                    "protocol": "grpc",
                    "routes": [{"match": {"prefix": "/"}, "cluster": "raw", "timeout": 0}],
                }
            ],
            "clusters": [{"name": "raw", "endpoints": [{"address": f"127.0.0.1:{backend_port}"}]}],
        }
        stack.enter_context(run_gateway(config, Path(tmp)))
        envoy_port = free_port()
        envoy = _grpc_proxy_config("bench", envoy_port, free_port(), backend_port, None)
        stack.enter_context(run_envoy(envoy))
        yield {
            "direct": f"127.0.0.1:{backend_port}",
            "meshgate": gateway_address,
            "envoy": f"127.0.0.1:{envoy_port}",
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    port = free_port()
    with (
        running(python_module("tests.support.raw_grpc_backend", "--port", str(port)), "READY"),
        contestants(port) as targets,
    ):
        print(
            f"| target | unary calls/s (c={args.concurrency}) | p50 ms | p99 ms "
            "| p50 ms (c=1) | stream msgs/s |"
        )
        print("|---|---|---|---|---|---|")
        for name, address in targets.items():
            rate, latencies = asyncio.run(unary_loop(address, args.seconds, args.concurrency))
            _, single = asyncio.run(unary_loop(address, min(args.seconds, 3.0), 1))
            messages = asyncio.run(stream_rate(address))
            print(
                f"| {name} | {rate:,.0f} | {percentile(latencies, 50) * 1e3:.2f} "
                f"| {percentile(latencies, 99) * 1e3:.2f} | {percentile(single, 50) * 1e3:.2f} "
                f"| {messages:,.0f} |"
            )


if __name__ == "__main__":
    main()
