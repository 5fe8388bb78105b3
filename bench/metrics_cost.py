"""Cost of the metrics observer per request (in process, no sockets).

Times ``gateway.metrics.observe`` over prebuilt Exchanges with timeit, next
to the observer this one replaced (requests and duration by listener and
status only, kept here as it was), in prometheus-client's single-process
mode and in the multiprocess mode that ``--workers N`` uses (values in
mmap files).

    .venv/bin/python -m bench.metrics_cost [requests]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import timeit
from typing import Any

MODES = ("single-process", "multiprocess")


def _measure(requests: int) -> None:
    from prometheus_client import Counter, Histogram

    from gateway.exchange import Attempt, Exchange
    from gateway.metrics import BUCKETS, observe

    requests_total = Counter("bench_before_requests_total", "", ["listener", "status"])
    duration = Histogram("bench_before_duration_seconds", "", ["listener"], buckets=BUCKETS)
    counters: dict[tuple[str, int], Any] = {}
    histograms: dict[str, Any] = {}

    def before(exchange: Exchange) -> None:
        counter = counters.get((exchange.listener, exchange.status))
        if counter is None:
            counter = counters[(exchange.listener, exchange.status)] = requests_total.labels(
                exchange.listener, str(exchange.status)
            )
        histogram = histograms.get(exchange.listener)
        if histogram is None:
            histogram = histograms[exchange.listener] = duration.labels(exchange.listener)
        counter.inc()
        histogram.observe(exchange.seconds)

    def built(status: int, attempts: int) -> Exchange:
        exchange = Exchange("public", "POST", "/shop.v1.Shop/Get", route="shop", cluster="shop")
        exchange.status, exchange.seconds = status, 0.0012
        for i in range(attempts):
            code = 0 if i == attempts - 1 else 14
            exchange.attempts.append(Attempt(f"10.0.0.{i + 1}:50051", 0.0, 0.001, code))
        return exchange

    cases = [
        ("before (listener, status)", before, built(200, 1)),
        ("after, no route (404)", observe, built(404, 0)),
        ("after, one attempt", observe, built(200, 1)),
        ("after, one retry", observe, built(200, 2)),
    ]
    for name, observer, exchange in cases:
        observer(exchange)  # the label children are cached from the first request on
        best = min(timeit.repeat(lambda: observer(exchange), number=requests, repeat=5))  # noqa: B023
        print(f"  {name:<28} {best / requests * 1e6:6.2f} us/request")


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "--child" else 20000
    if "--child" in sys.argv:
        _measure(int(sys.argv[-1]))
        return
    for mode in MODES:
        print(mode)
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with tempfile.TemporaryDirectory() as directory:
            if mode == "multiprocess":
                env["PROMETHEUS_MULTIPROC_DIR"] = directory
            # A fresh interpreter: prometheus-client picks its mode at import.
            subprocess.run(
                [sys.executable, "-m", "bench.metrics_cost", "--child", str(requests)],
                env=env,
                check=True,
            )


if __name__ == "__main__":
    main()
