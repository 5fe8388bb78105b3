"""The in-process cost of meshgate's mesh decisions, timed without sockets.

What a sidecar pair does per request on the network (pick a route, pick an
endpoint, count the request against the circuit breaker), meshgate does as
a few function calls in the worker. This times exactly those calls on the
snapshot the benchmark's config compiles to.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.contestants import ECHO_PATH, meshgate_config
from tests.support.processes import REPO

HEADERS = {"content-type": "application/json", "host": "127.0.0.1"}


def mesh_decision_micros(iterations: int = 200_000) -> float:
    """Mean microseconds for route match + endpoint pick + in-flight accounting."""
    # Imported here: the parent process only spawns this module in the tree under test.
    from gateway.sources import load_snapshot
    from gateway.upstream.call import Call
    from mesh.hashing import RequestAttributes

    with tempfile.TemporaryDirectory(prefix="meshgate-bench-") as workdir:
        path = Path(workdir) / "meshgate.yaml"
        config = meshgate_config(50051)
        config["listeners"][0]["address"] = "127.0.0.1:18080"
        path.write_text(yaml.safe_dump(config))
        snapshot = load_snapshot(path)
    routes = snapshot.listeners[0].routes
    service, method = ECHO_PATH.strip("/").split("/")
    call = Call(service, method, [b""])
    attributes = RequestAttributes("127.0.0.1")
    start = time.perf_counter()
    for _ in range(iterations):
        route = routes.find("POST", ECHO_PATH, HEADERS, b"")
        assert route is not None
        plan = route.cluster.select(call, HEADERS, attributes, None)
        plan.begin(plan.first)
        plan.end(plan.first)
    return (time.perf_counter() - start) / iterations * 1e6


def measure_in(source: Path) -> float | None:
    """Time the decision with the gateway code of ``source``; None when that code cannot."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.mesh_cost"],
        cwd=source,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    try:
        return float(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"mesh decision timing failed:\n{result.stderr[-1500:]}", file=sys.stderr)
        return None


if __name__ == "__main__":
    print(f"{mesh_decision_micros():.4f}")
