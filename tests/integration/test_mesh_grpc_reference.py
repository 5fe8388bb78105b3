"""MeshCore's routing decisions against grpcio's own proxyless xDS client.

Both clients read the same resources from the tests' ADS server and send the
same requests; the backend that served each one (``served_by``) and the
status of fault-aborted calls must agree. Random splits are compared with a
two-proportion bound: |p_grpcio - p_mesh| < 5 * sqrt(2 p (1 - p) / n), which a
correct pair of clients exceeds with probability below 1e-6.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesh.fault import fault_decision
from tests.support import xds_builders as b
from tests.support.net import free_port
from tests.support.processes import REPO, echo_backend
from tests.support.xds_mesh import echo, mesh_core
from tests.support.xds_server import XdsServer, serve_service

pytestmark = pytest.mark.integration

HOST, PORT = "shop.default.svc.cluster.local", 50051
RESOURCE_EXHAUSTED = 8
SPLIT_REQUESTS = 400
PLAN: list[dict[str, Any]] = [
    {"metadata": {"x-version": "v2"}, "count": 10},
    {"metadata": {"x-fault": "abort"}, "count": 10},
    {"metadata": {"x-user": "canary-7"}, "count": 10},
    {"count": SPLIT_REQUESTS},
]


@pytest.fixture(scope="module")
def shop() -> Iterator[b.Service]:
    ports = {name: free_port() for name in ("v1", "v2", "v3")}
    with (
        echo_backend(ports["v1"], "v1"),
        echo_backend(ports["v2"], "v2"),
        echo_backend(ports["v3"], "v3"),
    ):
        yield b.Service(HOST, PORT, {name: [("127.0.0.1", port)] for name, port in ports.items()})


def routes(shop: b.Service) -> list[Any]:
    v1, v2, v3 = (shop.cluster(s) for s in ("v1", "v2", "v3"))
    return [
        b.route(name="by-version", headers=[b.header("x-version", exact="v2")], cluster=v2),
        b.route(
            name="fault",
            headers=[b.header("x-fault", present=True)],
            cluster=v1,
            fault=b.abort(RESOURCE_EXHAUSTED),
        ),
        b.route(
            name="canary-users", headers=[b.header("x-user", regex="canary-[0-9]+")], cluster=v3
        ),
        b.route(name="split", prefix="/meshgate.test.v1.", weights={v1: 70, v3: 30}),
    ]


def run_grpcio(xds: XdsServer, target: str, tmp_path: Path) -> list[dict[str, Any]]:
    bootstrap = tmp_path / "bootstrap.json"
    bootstrap.write_text(json.dumps(xds.bootstrap("sidecar~127.0.0.1~grpcio.default~default")))
    completed = subprocess.run(
        [sys.executable, "-m", "tests.support.xds_reference_client", "--target", target],
        input=json.dumps(PLAN),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "GRPC_XDS_BOOTSTRAP": str(bootstrap)},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


async def run_mesh(xds: XdsServer, target: str) -> list[dict[str, Any]]:
    rng = random.Random(2024)
    results: list[dict[str, Any]] = []
    async with mesh_core(xds, rng=rng) as core:
        core.watch(target)
        await core.wait_ready(target, 10)
        for index, step in enumerate(PLAN):
            metadata = step.get("metadata", {})
            for _ in range(step["count"]):
                decision = core.route(target, b.ECHO_METHOD, metadata)
                assert decision is not None and decision.error is None, decision
                _, abort = fault_decision(decision.fault, rng, metadata)
                if abort is not None:
                    results.append({"plan": index, "served_by": None, "code": abort})
                    continue
                assert decision.address is not None
                served_by = await echo(decision.address)
                results.append({"plan": index, "served_by": served_by, "code": 0})
    return results


def outcomes(results: list[dict[str, Any]], plan: int) -> Counter[tuple[str | None, int]]:
    return Counter((r["served_by"], r["code"]) for r in results if r["plan"] == plan)


def test_mesh_core_routes_like_grpcio(shop: b.Service, tmp_path: Path) -> None:
    with XdsServer() as xds:
        serve_service(xds, shop, *routes(shop))
        reference = run_grpcio(xds, shop.target, tmp_path)
        ours = asyncio.run(run_mesh(xds, shop.target))
    assert len(reference) == len(ours) == sum(step["count"] for step in PLAN)
    # Deterministic routes: identical outcomes, request for request.
    for plan in range(3):
        assert outcomes(ours, plan) == outcomes(reference, plan), PLAN[plan]
    assert outcomes(ours, 0) == Counter({("v2", 0): 10})
    assert outcomes(ours, 1) == Counter({(None, RESOURCE_EXHAUSTED): 10})
    assert outcomes(ours, 2) == Counter({("v3", 0): 10})
    # The weighted split: both near 30 % v3, and near each other.
    n = SPLIT_REQUESTS
    share = {
        name: outcomes(r, 3)[("v3", 0)] / n for name, r in (("grpcio", reference), ("mesh", ours))
    }
    assert set(outcomes(reference, 3)) == set(outcomes(ours, 3)) == {("v1", 0), ("v3", 0)}
    bound = 5 * math.sqrt(2 * 0.3 * 0.7 / n)
    assert abs(share["grpcio"] - share["mesh"]) < bound, share
    for value in share.values():
        assert abs(value - 0.3) < 5 * math.sqrt(0.3 * 0.7 / n), share


def invalid_route_configs(shop: b.Service) -> dict[str, Any]:
    v1 = shop.cluster("v1")
    zero = b.route(weights={v1: 0})
    backref = b.route(regex="/(a)\\1", cluster=v1)
    header = b.route(headers=[b.header("x-user", regex="(?=a)b")], cluster=v1)
    return {"zero-weights": zero, "backreference": backref, "lookahead-header": header}


@pytest.mark.parametrize("case", ["zero-weights", "backreference", "lookahead-header"])
def test_mesh_core_nacks_what_grpcio_nacks(shop: b.Service, tmp_path: Path, case: str) -> None:
    bad = invalid_route_configs(shop)[case]
    grpcio_node = "sidecar~127.0.0.1~grpcio.default~default"
    with XdsServer() as xds:
        serve_service(xds, shop, bad)
        bootstrap = tmp_path / "bootstrap.json"
        bootstrap.write_text(json.dumps(xds.bootstrap(grpcio_node)))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.xds_reference_client",
                "--target",
                shop.target,
                "--timeout",
                "1",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, "GRPC_XDS_BOOTSTRAP": str(bootstrap)},
        )
        try:
            assert process.stdin is not None
            process.stdin.write(json.dumps([{"count": 1}]).encode())
            process.stdin.close()
            grpcio_streams = set()
            first = xds.wait_for(lambda r: r.node_id == grpcio_node, 20)
            grpcio_streams.add(first.stream)
            grpcio_nack = xds.wait_for(
                lambda r: (
                    r.stream in grpcio_streams
                    and r.type_url.endswith("RouteConfiguration")
                    and r.error is not None
                ),
                20,
            )
        finally:
            process.kill()
            process.wait(5)

        async def mesh_nack() -> str:
            async with mesh_core(xds) as core:
                core.watch(shop.target)
                nack = await asyncio.to_thread(
                    xds.wait_for,
                    lambda r: (
                        r.stream not in grpcio_streams
                        and r.type_url.endswith("RouteConfiguration")
                        and r.error is not None
                    ),
                    20,
                )
                return nack.error or ""

        ours = asyncio.run(mesh_nack())
    assert grpcio_nack.version == ""  # nothing accepted before
    assert shop.target in ours
