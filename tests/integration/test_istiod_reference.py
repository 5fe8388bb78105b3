"""A real istiod, observed through grpcio's own proxyless xDS client.

istiod (pilot-discovery, built from the Go module proxy, run with no Kubernetes)
reads the Istio YAML of tests/istio/config from a temporary directory. Two
grpcio backends stand in for the v1 and v2 workloads. grpcio's built-in xDS
client, in a subprocess with GRPC_XDS_BOOTSTRAP, calls
xds:///shop.default.svc.cluster.local:50051 and the tests check that what the
user wrote in the VirtualService is what happens: the weighted split, the header
route, the injected fault, the timeout, and a live edit. meshgate's own xDS
client must match this reference. The last test pins the raw resources istiod
sends (the contract docs/istiod-resources-sample.json illustrates).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tests.istio.dump_resources import dump
from tests.istio.probe import READY_MARKER, compile_probe
from tests.support.istiod import (
    Istiod,
    istiod_binary,
    render_config,
    running_istiod,
    write_grpc_bootstrap,
)
from tests.support.net import free_port
from tests.support.processes import REPO, python_module, running

pytestmark = pytest.mark.integration

HOST = "shop.default.svc.cluster.local"
TARGET = f"xds:///{HOST}:50051"
# grpcio 1.85 ends a call 1-2 s *before* the route's max_stream_duration (a
# per-process constant; see docs/istiod.md), so a 1 s route timeout would fail
# every call at once. 5 s leaves room for fast calls and still proves the route
# timeout, not the caller's deadline, ended the slow call.
ROUTE_TIMEOUT_SECONDS = 5.0
GRPCIO_EARLY_EXPIRY_SECONDS = 2.5
ABORT_PERCENT = 50
V1_WEIGHT, V2_WEIGHT = 80, 20
# A correct client lands outside mean +- 5 standard deviations of a binomial
# count about once in 1.7 million runs; a wrong split (say 50/50, or all v1) is
# far outside it at these sample sizes.
SIGMAS = 5.0
SPLIT_SAMPLES = 600
FAULT_SAMPLES = 400
LIVE_EDIT_DEADLINE_SECONDS = 20.0
CLIENT_ANSWER_TIMEOUT_SECONDS = 120.0


def binomial_band(samples: int, probability: float) -> tuple[float, float]:
    mean = samples * probability
    spread = SIGMAS * math.sqrt(samples * probability * (1 - probability))
    return mean - spread, mean + spread


class XdsClientProcess:
    """grpcio's xDS client in its own process (GRPC_XDS_BOOTSTRAP is read per process)."""

    def __init__(self, gen_dir: Path, bootstrap: Path, log: Path) -> None:
        self._log: IO[str] = log.open("w")
        self.log_path = log
        env = {
            **os.environ,
            "GRPC_XDS_BOOTSTRAP": str(bootstrap),
            "GRPC_VERBOSITY": os.environ.get("GRPC_VERBOSITY", "ERROR"),
        }
        self.proc = subprocess.Popen(
            python_module(
                "tests.istio.probe", "client", "--gen-dir", str(gen_dir), "--target", TARGET
            ),
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            ready = self._next_line(30.0)
            if ready.strip() != READY_MARKER:
                raise RuntimeError(f"xDS client did not start: {ready!r}\n{self.stderr()}")
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(line)
        self._answers.put(None)

    def _next_line(self, timeout: float) -> str:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"xDS client silent for {timeout}s\n{self.stderr()}") from None
        if line is None:
            raise RuntimeError(f"xDS client exited ({self.proc.poll()})\n{self.stderr()}")
        return line

    def stderr(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def ask(
        self, command: dict[str, Any], timeout: float = CLIENT_ANSWER_TIMEOUT_SECONDS
    ) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self._next_line(timeout))
        if "error" in answer:
            raise RuntimeError(f"xDS client failed {command}: {answer['error']}")
        return answer

    def whoami(self, count: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
        return self.ask(
            {
                "op": "whoami",
                "count": count,
                "metadata": sorted((headers or {}).items()),
                "timeout": 10,
            }
        )

    def stop(self) -> None:
        """Close stdin (the client's signal to exit); kill its process group if it lingers."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        # The reader sees EOF once the process is gone; closing its pipe under it
        # would raise in that thread.
        self._reader.join(timeout=5)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()
        if not self._log.closed:
            self._log.close()


@dataclass
class Mesh:
    istiod: Istiod
    client: XdsClientProcess
    config_dir: Path
    backend_ports: dict[str, int]
    values: dict[str, object]

    def edit(self, **changes: object) -> None:
        """Rewrite the VirtualService the way a user edits a file: one atomic save."""
        self.values.update(changes)
        render_config(self.config_dir, self.values, only=("virtual-service.yaml",))


@pytest.fixture(scope="session")
def probe_gen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_probe(tmp_path_factory.mktemp("probe-gen"))


@pytest.fixture(scope="session")
def istiod_executable() -> Path:
    return istiod_binary()


@contextmanager
def mesh_stack(workdir: Path, gen_dir: Path, binary: Path) -> Iterator[Mesh]:
    """Two backends, istiod fed the templates, and a warmed-up xDS client."""
    backend_ports = {"v1": free_port(), "v2": free_port()}
    values: dict[str, object] = {
        "V1_PORT": backend_ports["v1"],
        "V2_PORT": backend_ports["v2"],
        "V1_WEIGHT": V1_WEIGHT,
        "V2_WEIGHT": V2_WEIGHT,
        "ABORT_PERCENT": ABORT_PERCENT,
        "TIMEOUT": f"{ROUTE_TIMEOUT_SECONDS:g}s",
    }
    config_dir = workdir / "istio-config"
    render_config(config_dir, values)
    with ExitStack() as stack:
        for name, port in backend_ports.items():
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
        bootstrap = write_grpc_bootstrap(workdir / "grpc-bootstrap.json", istiod.xds_address)
        client = XdsClientProcess(gen_dir, bootstrap, workdir / "xds-client.log")
        stack.callback(client.stop)
        # The first call waits for LDS/RDS/CDS/EDS; its answer shows the chain resolved.
        warm_up = client.whoami(1)
        assert sum(warm_up["backends"].values()) == 1, (warm_up, client.stderr())
        yield Mesh(istiod, client, config_dir, backend_ports, values)


@pytest.fixture(scope="module")
def mesh(
    tmp_path_factory: pytest.TempPathFactory, probe_gen_dir: Path, istiod_executable: Path
) -> Iterator[Mesh]:
    with mesh_stack(
        tmp_path_factory.mktemp("istiod-mesh"), probe_gen_dir, istiod_executable
    ) as stack:
        yield stack


def test_weighted_split_follows_virtual_service_weights(mesh: Mesh) -> None:
    answer = mesh.client.whoami(SPLIT_SAMPLES)
    assert answer["errors"] == {}
    counts = answer["backends"]
    assert set(counts) <= {"v1", "v2"}
    assert counts.get("v1", 0) + counts.get("v2", 0) == SPLIT_SAMPLES
    low, high = binomial_band(SPLIT_SAMPLES, V2_WEIGHT / (V1_WEIGHT + V2_WEIGHT))
    assert low <= counts.get("v2", 0) <= high, (
        f"v2 got {counts.get('v2', 0)} of {SPLIT_SAMPLES}; want {low:.0f}..{high:.0f}"
    )


def test_header_match_routes_every_call_to_v2(mesh: Mesh) -> None:
    answer = mesh.client.whoami(100, {"x-canary": "true"})
    assert answer == {"backends": {"v2": 100}, "errors": {}}


def test_header_match_is_exact(mesh: Mesh) -> None:
    # "yes" is not "true": these calls fall through to the 80/20 route.
    answer = mesh.client.whoami(200, {"x-canary": "yes"})
    assert answer["errors"] == {}
    assert answer["backends"].get("v1", 0) > 0


def test_fault_aborts_the_configured_fraction_with_the_configured_status(mesh: Mesh) -> None:
    answer = mesh.client.whoami(FAULT_SAMPLES, {"x-fault": "abort"})
    aborted = answer["errors"].get("UNAVAILABLE", 0)
    assert set(answer["errors"]) <= {"UNAVAILABLE"}
    # The fault route sends what it lets through to subset v1 only.
    assert answer["backends"] == {"v1": FAULT_SAMPLES - aborted}
    low, high = binomial_band(FAULT_SAMPLES, ABORT_PERCENT / 100)
    assert low <= aborted <= high, (
        f"{aborted} of {FAULT_SAMPLES} aborted; want {low:.0f}..{high:.0f}"
    )


def test_route_timeout_ends_a_slow_call_with_deadline_exceeded(mesh: Mesh) -> None:
    # The caller allows 60 s and the method takes 30 s: only the VirtualService's
    # timeout can end the call this early.
    slow = mesh.client.ask({"op": "slow", "seconds": 30.0, "timeout": 60.0})
    assert slow["code"] == "DEADLINE_EXCEEDED"
    low = ROUTE_TIMEOUT_SECONDS - GRPCIO_EARLY_EXPIRY_SECONDS
    assert low <= slow["elapsed"] < ROUTE_TIMEOUT_SECONDS + 1.5, slow
    quick = mesh.client.ask({"op": "slow", "seconds": 0.1, "timeout": 20.0})
    assert quick["code"] == "OK"


def test_istiod_resources_for_a_proxyless_grpc_node(mesh: Mesh) -> None:
    sent = dump(
        mesh.istiod.xds_address,
        f"{HOST}:50051",
        "sidecar~127.0.0.1~dumper.default~default.svc.cluster.local",
        "default",
    )
    (listener,) = sent["lds"]["resources"]
    assert listener["name"] == f"{HOST}:50051"
    manager = listener["apiListener"]["apiListener"]
    route_name = f"outbound|50051||{HOST}"
    assert manager["rds"]["routeConfigName"] == route_name
    assert [f["name"] for f in manager["httpFilters"]] == [
        "envoy.filters.http.fault",
        "envoy.filters.http.router",
    ]

    (route_config,) = sent["rds"]["resources"]
    assert route_config["name"] == route_name
    (virtual_host,) = route_config["virtualHosts"]
    assert f"{HOST}:50051" in virtual_host["domains"]
    canary, fault, split = virtual_host["routes"]
    assert [r["name"] for r in (canary, fault, split)] == ["canary", "fault", "split"]
    assert canary["route"]["cluster"] == f"outbound|50051|v2|{HOST}"
    abort = fault["typedPerFilterConfig"]["envoy.filters.http.fault"]["abort"]
    assert abort["percentage"] == {"numerator": ABORT_PERCENT * 10_000, "denominator": "MILLION"}
    assert abort["grpcStatus"] == 14
    assert "retryPolicy" not in fault["route"]
    weighted = split["route"]["weightedClusters"]["clusters"]
    assert weighted == [
        {"name": f"outbound|50051|v1|{HOST}", "weight": V1_WEIGHT},
        {"name": f"outbound|50051|v2|{HOST}", "weight": V2_WEIGHT},
    ]
    # gRPC reads the route timeout from max_stream_duration, which istiod sets
    # only for proxyless (GENERATOR=grpc) nodes.
    assert split["route"]["maxStreamDuration"]["maxStreamDuration"] == (
        f"{ROUTE_TIMEOUT_SECONDS:g}s"
    )
    assert split["route"]["timeout"] == f"{ROUTE_TIMEOUT_SECONDS:g}s"
    assert split["route"]["retryPolicy"]["numRetries"] == 2
    # The v2 subset's consistentHash becomes a header hash policy on the routes
    # that can reach v2, and RING_HASH on the v2 cluster only.
    assert canary["route"]["hashPolicy"] == [{"header": {"headerName": "x-user"}}]
    assert "hashPolicy" not in fault["route"]

    clusters = {c["name"]: c for c in sent["cds"]["resources"]}
    assert set(clusters) == {f"outbound|50051|v1|{HOST}", f"outbound|50051|v2|{HOST}"}
    assert all(c["type"] == "EDS" for c in clusters.values())
    assert "lbPolicy" not in clusters[f"outbound|50051|v1|{HOST}"]  # round robin by default
    assert clusters[f"outbound|50051|v2|{HOST}"]["lbPolicy"] == "RING_HASH"

    ports = {
        assignment["clusterName"]: [
            lb["endpoint"]["address"]["socketAddress"]["portValue"]
            for locality in assignment["endpoints"]
            for lb in locality["lbEndpoints"]
        ]
        for assignment in sent["eds"]["resources"]
    }
    assert ports == {
        f"outbound|50051|v1|{HOST}": [mesh.backend_ports["v1"]],
        f"outbound|50051|v2|{HOST}": [mesh.backend_ports["v2"]],
    }


def test_live_edit_of_virtual_service_reaches_a_connected_client(
    tmp_path: Path, probe_gen_dir: Path, istiod_executable: Path
) -> None:
    with mesh_stack(tmp_path, probe_gen_dir, istiod_executable) as own:
        before = own.client.whoami(100)
        assert before["backends"].get("v1", 0) > 0

        own.edit(V1_WEIGHT=0, V2_WEIGHT=100)
        edited_at = time.monotonic()
        while True:
            batch = own.client.whoami(20)
            if batch == {"backends": {"v2": 20}, "errors": {}}:
                break
            if time.monotonic() - edited_at > LIVE_EDIT_DEADLINE_SECONDS:
                pytest.fail(
                    f"edit not in effect after {LIVE_EDIT_DEADLINE_SECONDS}s: {batch}\n"
                    f"{own.istiod.process.output}"
                )
            time.sleep(0.1)
        took = time.monotonic() - edited_at
        print(f"VirtualService edit took effect in {took:.2f}s", file=sys.stderr)

        after = own.client.whoami(200)
        assert after == {"backends": {"v2": 200}, "errors": {}}
