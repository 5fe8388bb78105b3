"""Istio mTLS from xDS (gRFC A29): the tests' ADS server sends the cluster shape
istiod sends for DestinationRule ``tls.mode: ISTIO_MUTUAL``, the bootstrap has
a ``file_watcher`` certificate provider, and grpcio's own xDS client with
``grpc.xds_channel_credentials`` is the reference on the same state: both
reach the mTLS backend, both refuse a backend whose SPIFFE ID does not match,
and a plaintext cluster stays plaintext. meshgate also follows a rotation of
the provider's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import xds_builders as b
from tests.support.certs import CertificateAuthority
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import REPO, echo_backend
from tests.support.xds_server import CLUSTER, ENDPOINTS, LISTENER, ROUTE, XdsServer

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"
SHOP = b.Service("shop.default.svc.cluster.local", 50051, {})
PLAIN = b.Service("plain.default.svc.cluster.local", 50051, {})
SHOP_ID = "spiffe://cluster.local/ns/default/sa/shop"
CLIENT_ID = "spiffe://cluster.local/ns/edge/sa/meshgate"
ROTATED_ID = "spiffe://cluster.local/ns/edge/sa/meshgate-rotated"
PLAN: list[dict[str, Any]] = [
    {"count": 3},
    {"metadata": {"x-backend": "rogue"}, "count": 2},
]


@dataclass
class Mesh:
    xds: XdsServer
    bootstrap: Path
    certs: Path
    ca: CertificateAuthority


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    d = tmp_path_factory.mktemp("mesh-certs")
    ca = CertificateAuthority("cluster.local root")
    ca.write(d, "root-cert")
    ca.issue(uris=[SHOP_ID]).write(d, "shop")
    ca.issue(uris=["spiffe://cluster.local/ns/default/sa/rogue"]).write(d, "rogue")
    ca.issue(uris=[CLIENT_ID]).write(d, "cert-chain")  # istio-agent's file names
    ports = {"good": free_port(), "rogue": free_port(), "plain": free_port()}

    def mtls(name: str) -> tuple[str, ...]:
        pem, key = d / f"{name}.pem", d / f"{name}.key"
        return ("--tls-cert", str(pem), "--tls-key", str(key), "--tls-ca", str(d / "root-cert.pem"))

    with ExitStack() as stack:
        stack.enter_context(
            echo_backend(ports["good"], "good", *mtls("shop"), "--max-connection-age-ms", "1000")
        )
        stack.enter_context(echo_backend(ports["rogue"], "rogue", *mtls("rogue")))
        stack.enter_context(echo_backend(ports["plain"], "plain"))
        xds = stack.enter_context(XdsServer())
        shop = b.Service(
            SHOP.host,
            SHOP.port,
            {"good": [("127.0.0.1", ports["good"])], "rogue": [("127.0.0.1", ports["rogue"])]},
        )
        plain = b.Service(PLAIN.host, PLAIN.port, {"v1": [("127.0.0.1", ports["plain"])]})
        socket = b.istio_mutual([SHOP_ID])
        xds.set(LISTENER, [shop.listener(), plain.listener()])
        xds.set(
            ROUTE,
            [
                shop.route_config(
                    b.route(
                        name="rogue",
                        headers=[b.header("x-backend", exact="rogue")],
                        cluster=shop.cluster("rogue"),
                    ),
                    b.route(name="default", cluster=shop.cluster("good")),
                ),
                plain.route_config(b.route(cluster=plain.cluster("v1"))),
            ],
        )
        xds.set(CLUSTER, [*shop.clusters(transport_socket=socket), *plain.clusters()])
        xds.set(ENDPOINTS, [*shop.endpoints(), *plain.endpoints()])
        document = xds.bootstrap()
        document["certificate_providers"] = {
            "default": {
                "plugin_name": "file_watcher",
                "config": {
                    "certificate_file": str(d / "cert-chain.pem"),
                    "private_key_file": str(d / "cert-chain.key"),
                    "ca_certificate_file": str(d / "root-cert.pem"),
                    "refresh_interval": "0.2s",
                },
            }
        }
        bootstrap = d / "bootstrap.json"
        bootstrap.write_text(json.dumps(document))
        yield Mesh(xds, bootstrap, d, ca)


@pytest.fixture(scope="module")
def gateway(
    mesh: Mesh, echo_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    routes = [
        {
            "name": name,
            "match": {"prefix": "/", "headers": [{"name": "x-target", "exact": name}]},
            "transcode": {"auto_mapping": True},
            "cluster": f"xds:///{service.target}",
            "timeout": "5s",
        }
        for name, service in (("shop", SHOP), ("plain", PLAIN))
    ]
    config = {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [{"name": "public", "routes": routes}],
        "mesh": {"xds": {"bootstrap": str(mesh.bootstrap)}},
    }
    with run_gateway(config, tmp_path_factory.mktemp("gw")) as running:
        yield running


def call(gateway: RunningGateway, target: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{ECHO}",
        json={"message": "hi"},
        headers={"x-target": target, **headers},
        timeout=15,
    )


def run_reference(mesh: Mesh) -> list[dict[str, Any]]:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.xds_reference_client",
            "--target",
            SHOP.target,
            "--xds-creds",
            "--timeout",
            "3",
        ],
        input=json.dumps(PLAN),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "GRPC_XDS_BOOTSTRAP": str(mesh.bootstrap)},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


def test_grpcio_and_meshgate_reach_the_istio_mutual_backend_and_refuse_a_wrong_san(
    mesh: Mesh, gateway: RunningGateway
) -> None:
    reference = run_reference(mesh)
    assert [(r["plan"], r["served_by"], r["code"]) for r in reference if r["plan"] == 0] == [
        (0, "good", 0)
    ] * 3
    assert all(r["served_by"] is None and r["code"] != 0 for r in reference if r["plan"] == 1)

    for _ in range(3):
        response = call(gateway, "shop")
        assert response.status_code == 200, response.text
        reply = response.json()
        assert reply["servedBy"] == "good"
        assert reply["metadata"]["x-client-identity"] == CLIENT_ID
    refused = call(gateway, "shop", **{"x-backend": "rogue"})
    assert refused.status_code == 503, refused.text
    assert refused.json()["message"] == "upstream unavailable"  # details stay in the log
    assert gateway.logged("peer identity rejected")


def test_a_plaintext_cluster_stays_plaintext(gateway: RunningGateway) -> None:
    response = call(gateway, "plain")
    assert response.status_code == 200, response.text
    assert response.json()["servedBy"] == "plain"
    assert "x-client-identity" not in response.json().get("metadata", {})


def test_the_cluster_shows_tls_in_the_admin_clusters_view(gateway: RunningGateway) -> None:
    clusters = httpx.get(f"{gateway.admin_url}/clusters", timeout=5).json()
    text = json.dumps(clusters)
    assert '"tls": true' in text and '"tls": false' in text, text


def test_rotated_provider_files_reach_new_connections_without_failed_calls(
    mesh: Mesh, gateway: RunningGateway
) -> None:
    assert call(gateway, "shop").json()["metadata"]["x-client-identity"] == CLIENT_ID
    slow: dict[str, httpx.Response] = {}
    in_flight = threading.Thread(
        target=lambda: slow.update(
            r=httpx.post(
                f"{gateway.url}{ECHO}",
                json={"message": "slow", "delay_seconds": 2.5},
                headers={"x-target": "shop"},
                timeout=15,
            )
        )
    )
    in_flight.start()
    time.sleep(0.3)
    mesh.ca.issue(uris=[ROTATED_ID]).write(mesh.certs, "cert-chain")
    # The good backend ends connections after a second (GOAWAY, calls finish);
    # the next connection is made with what the provider's files hold now.
    seen: set[str] = set()
    deadline = time.monotonic() + 15
    while ROTATED_ID not in seen and time.monotonic() < deadline:
        response = call(gateway, "shop")
        assert response.status_code == 200, response.text
        seen.add(response.json()["metadata"]["x-client-identity"])
        time.sleep(0.2)
    assert ROTATED_ID in seen
    in_flight.join(timeout=20)
    assert slow["r"].status_code == 200, slow["r"].text  # the call begun before the rotation
