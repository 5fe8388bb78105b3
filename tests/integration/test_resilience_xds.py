"""Endpoint health from xDS: CDS outlier_detection and health_checks, EDS
health_status, through a real meshgate process and the tests' ADS server,
with grpcio's own xDS client as the reference for gRFC A50 outlier detection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import health_check_pb2

from tests.support import xds_builders as b
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import REPO, echo_backend
from tests.support.xds_server import CLUSTER, ENDPOINTS, XdsServer, serve_service

pytestmark = pytest.mark.integration

HOST, PORT = "shop.default.svc.cluster.local", 50051
ECHO = "/meshgate.test.v1.EchoService/Echo"
NAMES = ("a", "b", "c")
# The load both clients send while c fails: REQUESTS calls PAUSE apart.
REQUESTS, PAUSE = 60, 0.05
# gRFC A50 failure percentage, judged every second; success rate and
# Envoy's consecutive checks off, so that both clients run the same check.
INTERVAL_S = 1.0


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[tuple[dict[str, int], dict[str, Path]]]:
    ports = {n: free_port() for n in NAMES}
    controls = {n: tmp_path / f"{n}.control" for n in NAMES}
    with ExitStack() as stack:
        for name in NAMES:
            stack.enter_context(echo_backend(ports[name], name, control=controls[name]))
        yield ports, controls


def shop(ports: dict[str, int]) -> b.Service:
    return b.Service(HOST, PORT, {"all": [("127.0.0.1", ports[n]) for n in NAMES]})


def with_outlier_detection(proto: cluster_pb2.Cluster) -> cluster_pb2.Cluster:
    od = proto.outlier_detection
    od.interval.seconds = int(INTERVAL_S)
    od.base_ejection_time.seconds = 30
    od.max_ejection_percent.value = 50
    od.enforcing_consecutive_5xx.value = 0
    od.enforcing_success_rate.value = 0
    od.failure_percentage_threshold.value = 50
    od.enforcing_failure_percentage.value = 100
    od.failure_percentage_minimum_hosts.value = 3
    od.failure_percentage_request_volume.value = 3
    return proto


def with_health_check(proto: cluster_pb2.Cluster) -> cluster_pb2.Cluster:
    check = proto.health_checks.add(
        grpc_health_check=health_check_pb2.HealthCheck.GrpcHealthCheck()
    )
    check.interval.nanos = 300_000_000
    check.timeout.nanos = 300_000_000
    check.unhealthy_threshold.value = 2
    check.healthy_threshold.value = 1
    return proto


@pytest.fixture
def xds() -> Iterator[XdsServer]:
    with XdsServer() as server:
        yield server


@contextmanager
def meshgate(xds: XdsServer, echo_set: Path, tmp_path: Path) -> Iterator[RunningGateway]:
    """meshgate on the ADS server's resources (publish them first: start-up waits for them)."""
    bootstrap = tmp_path / "bootstrap.json"
    bootstrap.write_text(json.dumps(xds.bootstrap()))
    config = {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True},
                        "cluster": f"xds:///{HOST}:{PORT}",
                        "timeout": "5s",
                    }
                ],
            }
        ],
        "mesh": {"xds": {"bootstrap": str(bootstrap)}},
    }
    with run_gateway(config, tmp_path) as running:
        yield running


def publish(xds: XdsServer, service: b.Service, *edits: Any) -> None:
    serve_service(xds, service, b.route(cluster=service.cluster("all")))
    clusters = service.clusters()
    for edit in edits:
        clusters = [edit(c) for c in clusters]
    xds.set(CLUSTER, clusters)


def through_gateway(gateway: RunningGateway) -> list[dict[str, Any]]:
    results = []
    with gateway.client(timeout=5.0) as client:
        for _ in range(REQUESTS):
            reply = client.post(ECHO, json={"message": "x"})
            ok = reply.status_code == 200
            results.append(
                {"served_by": reply.json()["servedBy"] if ok else None, "code": 0 if ok else 14}
            )
            time.sleep(PAUSE)
    return results


def through_grpcio(xds: XdsServer, tmp_path: Path) -> list[dict[str, Any]]:
    bootstrap = tmp_path / "grpcio-bootstrap.json"
    bootstrap.write_text(json.dumps(xds.bootstrap("sidecar~127.0.0.1~grpcio.default~default")))
    completed = subprocess.run(
        [sys.executable, "-m", "tests.support.xds_reference_client", "--target", f"{HOST}:{PORT}"],
        input=json.dumps([{"count": REQUESTS, "pause": PAUSE}]),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "GRPC_XDS_BOOTSTRAP": str(bootstrap)},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


def summary(results: list[dict[str, Any]]) -> tuple[int, Counter[str | None]]:
    """Failures in the whole run, and who served the last third (long after ejection)."""
    failures = sum(1 for r in results if r["code"] != 0)
    tail = Counter(r["served_by"] for r in results[-REQUESTS // 3 :])
    return failures, tail


def test_failure_percentage_ejection_matches_grpcio(
    backends: tuple[dict[str, int], dict[str, Path]],
    xds: XdsServer,
    echo_set: Path,
    tmp_path: Path,
) -> None:
    ports, controls = backends
    service = shop(ports)
    publish(xds, service, with_outlier_detection)
    controls["c"].write_text("unavailable")
    reference = through_grpcio(xds, tmp_path)
    with meshgate(xds, echo_set, tmp_path) as gateway:
        ours = through_gateway(gateway)
        dump = httpx.get(f"{gateway.admin_url}/clusters", timeout=5).json()["xds"]
        metrics = httpx.get(f"{gateway.admin_url}/metrics", timeout=5).text
    ref_failures, ref_tail = summary(reference)
    our_failures, our_tail = summary(ours)
    print(
        f"[xDS failure percentage] grpcio: sent {len(reference)}, failed {ref_failures};"
        f" meshgate: sent {len(ours)}, failed {our_failures}"
    )
    # Both see c fail during the first interval, then eject it: no failure
    # and no request to c afterwards.
    for failures, tail in ((ref_failures, ref_tail), (our_failures, our_tail)):
        assert 1 <= failures <= 15
        assert set(tail) == {"a", "b"}, tail
    # The first failures come within the first interval for both; the counts
    # agree within what request timing allows.
    assert abs(ref_failures - our_failures) <= 8
    endpoints = dump[service.cluster("all")]["endpoints"]
    ejected = {e["address"] for e in endpoints if e["ejected"]}
    assert ejected == {f"127.0.0.1:{ports['c']}"}
    assert 'reason="failure_percentage"} 1.0' in metrics


def test_cds_health_checks_and_eds_health_status(
    backends: tuple[dict[str, int], dict[str, Path]],
    xds: XdsServer,
    echo_set: Path,
    tmp_path: Path,
) -> None:
    ports, controls = backends
    service = shop(ports)
    publish(xds, service, with_health_check)
    with meshgate(xds, echo_set, tmp_path) as gateway:
        check_health_and_eds_status(gateway, xds, service, ports, controls)


def check_health_and_eds_status(
    gateway: RunningGateway,
    xds: XdsServer,
    service: b.Service,
    ports: dict[str, int],
    controls: dict[str, Path],
) -> None:
    c = f"127.0.0.1:{ports['c']}"

    def endpoint(address: str) -> dict[str, Any]:
        dump = httpx.get(f"{gateway.admin_url}/clusters", timeout=5).json()["xds"]
        found = dump.get(service.cluster("all"), {"endpoints": []})["endpoints"]
        return next((e for e in found if e["address"] == address), {})

    deadline = time.monotonic() + 10
    while endpoint(c).get("active_health") != "healthy":
        assert time.monotonic() < deadline, endpoint(c)
        time.sleep(0.1)
    # The active check: NOT_SERVING takes c out.
    controls["c"].write_text("unavailable")
    deadline = time.monotonic() + 5
    while endpoint(c).get("active_health") != "unhealthy":
        assert time.monotonic() < deadline, endpoint(c)
        time.sleep(0.1)
    served = Counter(r["served_by"] for r in through_gateway(gateway))
    assert set(served) == {"a", "b"}, served
    controls["c"].write_text("")
    deadline = time.monotonic() + 5
    while endpoint(c).get("active_health") != "healthy":
        assert time.monotonic() < deadline, endpoint(c)
        time.sleep(0.1)
    # EDS health_status: the control plane marks c UNHEALTHY; it takes no traffic.
    xds.set(
        ENDPOINTS,
        [
            b.endpoints(
                service.cluster("all"),
                [b.Locality([("127.0.0.1", ports[n]) for n in NAMES], unhealthy=[2])],
            )
        ],
    )
    deadline = time.monotonic() + 5
    while endpoint(c).get("health") != "unhealthy":
        assert time.monotonic() < deadline, endpoint(c)
        time.sleep(0.1)
    served = Counter(r["served_by"] for r in through_gateway(gateway))
    assert set(served) == {"a", "b"}, served


def test_a_channel_closes_when_its_endpoint_leaves_eds(
    backends: tuple[dict[str, int], dict[str, Path]],
    xds: XdsServer,
    echo_set: Path,
    tmp_path: Path,
) -> None:
    ports, _ = backends
    service = shop(ports)
    publish(xds, service)
    with meshgate(xds, echo_set, tmp_path) as gateway:
        served = Counter(r["served_by"] for r in through_gateway(gateway))
        assert set(served) == set(NAMES)

        def channels() -> set[str]:
            dump = httpx.get(f"{gateway.admin_url}/clusters", timeout=5).json()
            return set(dump["channels"])

        addresses = {n: f"127.0.0.1:{ports[n]}" for n in NAMES}
        assert channels() == set(addresses.values())
        xds.set(
            ENDPOINTS,
            [
                b.endpoints(
                    service.cluster("all"),
                    [b.Locality([("127.0.0.1", ports["a"]), ("127.0.0.1", ports["b"])])],
                )
            ],
        )
        deadline = time.monotonic() + 5
        while addresses["c"] in channels():
            assert time.monotonic() < deadline, channels()
            time.sleep(0.1)
        assert channels() == {addresses["a"], addresses["b"]}
        served = Counter(r["served_by"] for r in through_gateway(gateway))
        assert set(served) == {"a", "b"}


def test_a_killed_backend_is_ejected_with_rds_retries_hiding_it(
    xds: XdsServer, echo_set: Path, tmp_path: Path
) -> None:
    """CDS consecutive_5xx ejects a dead endpoint; the RDS route whose retry_on
    has connect-failure and reset hides it from the client altogether."""
    ports = {n: free_port() for n in NAMES}
    service = shop(ports)
    with ExitStack() as stack:
        processes = {n: stack.enter_context(echo_backend(ports[n], n)) for n in NAMES}
        serve_service(
            xds,
            service,
            b.route(
                headers=[b.header("x-retry", present=True)],
                cluster=service.cluster("all"),
                retry_on="unavailable,connect-failure,reset",
                num_retries=2,
            ),
            b.route(cluster=service.cluster("all")),
        )

        def consecutive(proto: cluster_pb2.Cluster) -> cluster_pb2.Cluster:
            proto.lb_policy = cluster_pb2.Cluster.RANDOM
            od = proto.outlier_detection
            od.consecutive_5xx.value = 3
            od.interval.nanos = 500_000_000
            od.base_ejection_time.seconds = 30
            od.max_ejection_percent.value = 50
            return proto

        xds.set(CLUSTER, [consecutive(c) for c in service.clusters()])
        with meshgate(xds, echo_set, tmp_path) as gateway:
            with gateway.client(timeout=5.0) as client:
                warm = Counter(client.post(ECHO, json={}).json()["servedBy"] for _ in range(30))
                assert set(warm) == set(NAMES)
                processes["b"].stop()
                killed = time.monotonic()
                results: list[tuple[float, bool, int, str]] = []
                for i in range(200):
                    retried = i % 2 == 0
                    reply = client.post(ECHO, json={}, headers={"x-retry": "1"} if retried else {})
                    served_by = reply.json().get("servedBy", "") if reply.is_success else ""
                    results.append(
                        (time.monotonic() - killed, retried, reply.status_code, served_by)
                    )
                    if time.monotonic() - killed > 6:
                        break
            dump = httpx.get(f"{gateway.admin_url}/clusters", timeout=5).json()["xds"]
    with_retries = [r for r in results if r[1]]
    without = [r for r in results if not r[1]]
    failed = [r for r in without if r[2] != 200]
    print(
        f"[xDS backend killed] with RDS retries: sent {len(with_retries)},"
        f" failed {sum(r[2] != 200 for r in with_retries)};"
        f" without: sent {len(without)}, failed {len(failed)},"
        f" last failure {max((r[0] for r in failed), default=0.0):.2f}s after the fault"
    )
    assert [r for r in with_retries if r[2] != 200] == []
    assert len(failed) <= 3 and all(r[2] == 503 for r in failed)
    assert max((r[0] for r in failed), default=0.0) < 2.0
    endpoints = {e["address"]: e for e in dump[service.cluster("all")]["endpoints"]}
    assert endpoints[f"127.0.0.1:{ports['b']}"]["ejected"] is True
