"""meshgate in an Istio mesh with STRICT mTLS, configured by a real istiod.

A PeerAuthentication STRICT and a DestinationRule ``tls.mode: ISTIO_MUTUAL``;
the backends' WorkloadEntries carry a service account, from which istiod
derives the SPIFFE ID the client must see. The backends are grpcio servers
that require a client certificate from the mesh CA (what STRICT means for a
workload); the certificates are files named in the bootstrap's
``file_watcher`` provider, as istio-agent writes them. meshgate reaches them
over mTLS; when the service account istiod names changes, meshgate refuses
the backend whose certificate no longer matches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.certs import CertificateAuthority
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.istiod import (
    grpc_bootstrap,
    istiod_binary,
    render_config,
    running_istiod,
    write_atomically,
)
from tests.support.net import free_port
from tests.support.processes import echo_backend

pytestmark = pytest.mark.integration

HOST = "shop.default.svc.cluster.local"
ECHO = "/meshgate.test.v1.EchoService/Echo"
SHOP_ID = "spiffe://cluster.local/ns/default/sa/shop"
GATEWAY_ID = "spiffe://cluster.local/ns/edge/sa/meshgate"
PEER_AUTHENTICATION = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: default
spec:
  mtls:
    mode: STRICT
"""


def mutual_tls(config_dir: Path, service_account: str) -> None:
    """Turn the rendered templates into the STRICT mTLS mesh."""
    rule = config_dir / "destination-rule.yaml"
    text = rule.read_text()
    if "ISTIO_MUTUAL" not in text:
        text = text.replace(
            "  trafficPolicy:\n", "  trafficPolicy:\n    tls:\n      mode: ISTIO_MUTUAL\n", 1
        )
        write_atomically(rule, text)
    entries = config_dir / "workload-entries.yaml"
    lines = [
        line
        for line in entries.read_text().splitlines()
        if not line.startswith("  serviceAccount:")
    ]
    out = []
    for line in lines:
        out.append(line)
        if line == "  address: 127.0.0.1":
            out.append(f"  serviceAccount: {service_account}")
    write_atomically(entries, "\n".join(out) + "\n")
    write_atomically(config_dir / "peer-authentication.yaml", PEER_AUTHENTICATION)


@dataclass
class Mesh:
    gateway: RunningGateway
    config_dir: Path


@pytest.fixture(scope="module")
def mesh(echo_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    binary = istiod_binary()
    workdir = tmp_path_factory.mktemp("istiod-mtls")
    certs = workdir / "certs"
    certs.mkdir()
    ca = CertificateAuthority("cluster.local")
    ca.write(certs, "root-cert")
    ca.issue(uris=[SHOP_ID]).write(certs, "shop")
    ca.issue(uris=[GATEWAY_ID]).write(certs, "cert-chain")
    ports = {"v1": free_port(), "v2": free_port()}
    config_dir = workdir / "istio-config"
    render_config(
        config_dir,
        {
            "V1_PORT": ports["v1"],
            "V2_PORT": ports["v2"],
            "V1_WEIGHT": 50,
            "V2_WEIGHT": 50,
            "ABORT_PERCENT": 0,
            "TIMEOUT": "5s",
        },
    )
    mutual_tls(config_dir, "shop")
    server_tls = (
        "--tls-cert",
        str(certs / "shop.pem"),
        "--tls-key",
        str(certs / "shop.key"),
        "--tls-ca",
        str(certs / "root-cert.pem"),
    )
    with ExitStack() as stack:
        for name, port in ports.items():
            stack.enter_context(echo_backend(port, name, *server_tls))
        istiod = stack.enter_context(running_istiod(config_dir, binary=binary))
        document = grpc_bootstrap(istiod.xds_address)
        document["certificate_providers"] = {
            "default": {
                "plugin_name": "file_watcher",
                "config": {
                    "certificate_file": str(certs / "cert-chain.pem"),
                    "private_key_file": str(certs / "cert-chain.key"),
                    "ca_certificate_file": str(certs / "root-cert.pem"),
                    "refresh_interval": "1s",
                },
            }
        }
        bootstrap = workdir / "bootstrap.json"
        write_atomically(bootstrap, json.dumps(document))
        config = {
            "descriptors": [{"file": str(echo_set)}],
            "listeners": [
                {
                    "name": "public",
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "transcode": {"auto_mapping": True},
                            "cluster": f"xds:///{HOST}:50051",
                            "timeout": "10s",
                        }
                    ],
                }
            ],
            "mesh": {"xds": {"bootstrap": str(bootstrap)}},
        }
        gateway = stack.enter_context(run_gateway(config, workdir))
        yield Mesh(gateway, config_dir)


def call(mesh: Mesh) -> httpx.Response:
    return httpx.post(f"{mesh.gateway.url}{ECHO}", json={"message": "hi"}, timeout=15)


def test_meshgate_reaches_strict_mtls_backends_with_its_mesh_identity(mesh: Mesh) -> None:
    served = set()
    for _ in range(10):
        response = call(mesh)
        assert response.status_code == 200, response.text
        reply = response.json()
        assert reply["metadata"]["x-client-identity"] == GATEWAY_ID
        served.add(reply["servedBy"])
    assert served <= {"v1", "v2"} and served


def test_the_san_istiod_derives_from_the_service_account_is_enforced(mesh: Mesh) -> None:
    mutual_tls(mesh.config_dir, "billing")  # the backends still present .../sa/shop
    deadline = time.monotonic() + 30
    response = call(mesh)
    while response.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        response = call(mesh)
    assert response.status_code == 503, response.text
    assert response.json()["message"] == "upstream unavailable"  # details stay in the log
    assert mesh.gateway.logged("peer identity rejected")
    mutual_tls(mesh.config_dir, "shop")
    deadline = time.monotonic() + 30
    while response.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        response = call(mesh)
    assert response.status_code == 200, response.text
