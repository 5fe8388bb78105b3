"""meshgate configured by a real istiod, side by side with grpcio's xDS client.

The same istiod (no Kubernetes, Istio YAML from a directory) serves both
clients; the same backends answer. Each VirtualService behaviour is checked
on meshgate's HTTP side, and the traffic split is compared with what
grpcio's own proxyless client observes in the same run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.test_istiod_reference import XdsClientProcess, binomial_band
from tests.istio.probe import READY_MARKER, compile_probe
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.istiod import (
    istiod_binary,
    render_config,
    running_istiod,
    write_grpc_bootstrap,
)
from tests.support.net import free_port
from tests.support.processes import python_module, running
from tests.support.protos import compile_descriptor_set

pytestmark = pytest.mark.integration

HOST = "shop.default.svc.cluster.local"
WHOAMI = "/meshgate.istio.probe.v1.Probe/Whoami"
SLOW = "/meshgate.istio.probe.v1.Probe/Slow"
PROBE_ROOT = Path(__file__).resolve().parents[1] / "istio"
# grpcio ends calls 1-2 s before max_stream_duration (docs/istiod.md), so a
# shorter timeout would fail every reference call; meshgate applies it as written.
ROUTE_TIMEOUT_SECONDS = 5.0
ABORT_PERCENT = 50
V1_WEIGHT, V2_WEIGHT = 80, 20
SAMPLES = 600


@dataclass
class Stack:
    gateway: RunningGateway
    grpc_client: XdsClientProcess
    config_dir: Path
    values: dict[str, object]

    def edit(self, **changes: object) -> None:
        self.values.update(changes)
        render_config(self.config_dir, self.values, only=("virtual-service.yaml",))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = istiod_binary()
    workdir = tmp_path_factory.mktemp("istiod-meshgate")
    gen_dir = compile_probe(workdir / "gen")
    descriptors = compile_descriptor_set("probe.proto", workdir / "probe.pb", root=PROBE_ROOT)
    ports = {"v1": free_port(), "v2": free_port()}
    values: dict[str, object] = {
        "V1_PORT": ports["v1"],
        "V2_PORT": ports["v2"],
        "V1_WEIGHT": V1_WEIGHT,
        "V2_WEIGHT": V2_WEIGHT,
        "ABORT_PERCENT": ABORT_PERCENT,
        "TIMEOUT": f"{ROUTE_TIMEOUT_SECONDS:g}s",
    }
    config_dir = workdir / "istio-config"
    render_config(config_dir, values)
    with ExitStack() as stack:
        for name, port in ports.items():
            stack.enter_context(
                running(
                    python_module(
                        "tests.istio.probe",
                        "serve",
                        "--gen-dir",
                        str(gen_dir),
                        "--port",
                        str(port),
                        "--name",
                        name,
                    ),
                    READY_MARKER,
                )
            )
        istiod = stack.enter_context(running_istiod(config_dir, binary=binary))
        bootstrap = write_grpc_bootstrap(workdir / "bootstrap.json", istiod.xds_address)
        config = {
            "descriptors": [{"file": str(descriptors)}],
            "listeners": [
                {
                    "name": "public",
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "transcode": {"auto_mapping": True},
                            "cluster": f"xds:///{HOST}:50051",
                            "timeout": "30s",
                        }
                    ],
                }
            ],
            "mesh": {"xds": {"bootstrap": str(bootstrap)}},
        }
        gateway = stack.enter_context(run_gateway(config, workdir))
        grpc_client = XdsClientProcess(gen_dir, bootstrap, workdir / "grpcio.log")
        stack.callback(grpc_client.stop)
        yield Stack(gateway, grpc_client, config_dir, values)


def whoami(stack: Stack, count: int, **headers: str) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    with stack.gateway.client() as client:
        for _ in range(count):
            response = client.post(WHOAMI, json={}, headers=headers)
            outcomes[
                response.json()["backend"]
                if response.status_code == 200
                else str(response.status_code)
            ] += 1
    return outcomes


def test_split_follows_the_virtual_service_and_agrees_with_grpcio(stack: Stack) -> None:
    mine = whoami(stack, SAMPLES)
    reference = stack.grpc_client.whoami(SAMPLES)["backends"]
    low, high = binomial_band(SAMPLES, V2_WEIGHT / (V1_WEIGHT + V2_WEIGHT))
    assert set(mine) == {"v1", "v2"}
    assert low <= mine["v2"] <= high, mine
    assert low <= reference.get("v2", 0) <= high, reference
    # Two samples of one 20 % proportion: their difference has a standard
    # deviation of sqrt(2 * 0.2 * 0.8 / n); 5 sigma of it.
    spread = 5 * (2 * 0.2 * 0.8 / SAMPLES) ** 0.5
    assert abs(mine["v2"] / SAMPLES - reference.get("v2", 0) / SAMPLES) < spread


def test_header_match_goes_to_v2_as_with_grpcio(stack: Stack) -> None:
    assert whoami(stack, 50, **{"x-canary": "true"}) == Counter({"v2": 50})
    assert stack.grpc_client.whoami(50, {"x-canary": "true"})["backends"] == {"v2": 50}


def test_fault_aborts_half_with_unavailable(stack: Stack) -> None:
    outcomes = whoami(stack, 400, **{"x-fault": "abort"})
    assert set(outcomes) <= {"v1", "503"}
    low, high = binomial_band(400, ABORT_PERCENT / 100)
    assert low <= outcomes["503"] <= high, outcomes


def test_route_timeout_from_istiod_gives_504(stack: Stack) -> None:
    with stack.gateway.client() as client:
        started = time.monotonic()
        slow = client.post(SLOW, json={"seconds": 30})
        elapsed = time.monotonic() - started
        quick = client.post(SLOW, json={"seconds": 0.1})
    assert slow.status_code == 504
    assert ROUTE_TIMEOUT_SECONDS - 0.05 <= elapsed < ROUTE_TIMEOUT_SECONDS + 1.0
    assert quick.status_code == 200


def test_admin_shows_istiod_resources_acked(stack: Stack) -> None:
    dump = httpx.get(f"{stack.gateway.admin_url}/config_dump").json()["xds"]
    states = {(r["type"], r["state"]) for r in dump["resources"]}
    assert {kind for kind, _ in states} == {"lds", "rds", "cds", "eds"}
    assert {state for _, state in states} == {"acked"}


def test_live_edit_reaches_meshgate_within_seconds(stack: Stack) -> None:
    stack.edit(V1_WEIGHT=0, V2_WEIGHT=100)
    try:
        deadline = time.monotonic() + 20
        while whoami(stack, 10) != Counter({"v2": 10}):
            assert time.monotonic() < deadline, "the edit never reached meshgate"
            time.sleep(0.2)
    finally:
        stack.edit(V1_WEIGHT=V1_WEIGHT, V2_WEIGHT=V2_WEIGHT)
