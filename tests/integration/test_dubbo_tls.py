"""meshgate to the real Dubbo peers over mTLS, each cluster checking the
peer's SPIFFE ID.

* Java Dubbo 3.3: Triple gRPC mode (``transcode:`` over greeter.proto),
  Triple HTTP/JSON mode and dubbo2; TLS from JVM options alone
  (``dubbo.ssl.*``), so the cached jar is reused.
* dubbo-go 3.3.2: Triple gRPC mode (``--tls-*`` flags of the peer). Its
  dubbo2 (getty) server does not take the TLS option in this version, and
  its HTTP/JSON mode serves the IDL Greeter only, so those are not run here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.certs import CertificateAuthority
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.peers import PROTO_DIR, go_tls_options, java_tls_options, peer_or_skip
from tests.support.protos import compile_descriptor_set

pytestmark = pytest.mark.integration

USERS = "org.apache.dubbo.meshgate.UserService"
GREETER = "meshgate.interop.v1.Greeter"
PEER_ID = "spiffe://cluster.local/ns/dubbo/sa/peer"
G1 = {"group": "g1", "version": "1.0.0"}
TLS_OPTIONS = {"java": java_tls_options, "go": go_tls_options}
# A JVM's first TLS handshake and first call, on a loaded machine, took over 10 s once.
FIRST_CALL = "30s"


@pytest.fixture(scope="module", params=["java", "go"])
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, RunningGateway]]:
    name: str = request.param
    d = tmp_path_factory.mktemp(f"dubbo-tls-{name}")
    ca = CertificateAuthority("dubbo mesh")
    ca_file = ca.write(d)
    server_pem, server_key = ca.issue(uris=[PEER_ID]).write(d, "peer")
    ca.issue(uris=["spiffe://cluster.local/ns/edge/sa/meshgate"]).write(d, "client")
    descriptors = compile_descriptor_set("greeter.proto", d / "greeter.pb", root=PROTO_DIR)
    mtls = {
        "ca": str(ca_file),
        "cert": str(d / "client.pem"),
        "key": str(d / "client.key"),
        "verify_subject_alt_names": [PEER_ID],
    }
    wrong = {**mtls, "verify_subject_alt_names": ["spiffe://cluster.local/ns/dubbo/sa/other"]}
    with peer_or_skip(name, TLS_OPTIONS[name](server_pem, server_key, ca_file)) as peer:

        def cluster(name: str, protocol: str, port: int | None, tls: Any) -> dict[str, Any]:
            out: dict[str, Any] = {"name": name, "protocol": protocol, **G1}
            out["endpoints"] = [{"address": f"127.0.0.1:{port}"}]
            return {**out, "tls": tls} if tls else out

        def grpc_route(cluster: str) -> dict[str, Any]:
            match = {"prefix": f"/{GREETER}/", "headers": [{"name": "x-cluster", "exact": cluster}]}
            transcode = {"services": [GREETER], "auto_mapping": True}
            return {
                "match": match,
                "cluster": cluster,
                "timeout": FIRST_CALL,
                "transcode": transcode,
            }

        types = {"echo": ["java.lang.String"]}
        json_routes = [
            {"match": {"prefix": "/tri/"}, "cluster": "tri", "dubbo": {}},
            {
                "match": {"prefix": "/dubbo/"},
                "cluster": "dubbo",
                "dubbo": {"parameter_types": types},
            },
        ]
        config = {
            "descriptors": [{"file": str(descriptors)}],
            "listeners": [
                {
                    "name": "public",
                    "routes": [
                        *(grpc_route(c) for c in ("tri", "wrong-san", "plaintext")),
                        *(json_routes if name == "java" else []),
                    ],
                }
            ],
            "clusters": [
                cluster("tri", "triple", peer.triple_port, mtls),
                cluster("dubbo", "dubbo", peer.dubbo_port, mtls),
                cluster("wrong-san", "triple", peer.triple_port, wrong),
                cluster("plaintext", "triple", peer.triple_port, None),
            ],
        }
        with run_gateway(config, d) as running:
            yield name, running


def say_hello(gateway: RunningGateway, cluster: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/{GREETER}/SayHello",
        json={"name": "ada"},
        headers={"x-cluster": cluster},
        timeout=40,
    )


def test_triple_grpc_mode_over_mtls(gateway: tuple[str, RunningGateway]) -> None:
    _, running = gateway
    response = say_hello(running, "tri")
    assert response.status_code == 200, response.text
    assert "ada" in response.json()["message"]


@pytest.mark.parametrize("gateway", ["java"], indirect=True)
@pytest.mark.parametrize("mode", ["tri", "dubbo"])
def test_java_triple_json_and_dubbo2_over_mtls(
    gateway: tuple[str, RunningGateway], mode: str
) -> None:
    _, running = gateway
    response = httpx.post(f"{running.url}/{mode}/{USERS}/echo", json=["x"], timeout=40)
    assert response.status_code == 200, response.text
    assert response.json() == "x [java g1/1.0.0]"


def test_a_peer_with_another_identity_is_refused(gateway: tuple[str, RunningGateway]) -> None:
    response = say_hello(gateway[1], "wrong-san")
    assert response.status_code == 503, response.text
    assert response.json()["message"] == "upstream unavailable"  # details stay in the log
    assert gateway[1].logged("peer identity rejected")


def test_plaintext_to_the_tls_peer_fails_cleanly(gateway: tuple[str, RunningGateway]) -> None:
    response = say_hello(gateway[1], "plaintext")
    assert response.status_code == 503, response.text
