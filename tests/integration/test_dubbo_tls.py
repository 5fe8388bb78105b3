"""meshgate to the real Java Dubbo 3.3 peer over mTLS, in all three modes:
Triple gRPC mode (``transcode:`` over greeter.proto), Triple HTTP/JSON mode
and dubbo2, each cluster checking the peer's SPIFFE ID.

The Java peer serves TLS from JVM options alone (``dubbo.ssl.*``), so the
cached jar serves these tests too. dubbo-go configures TLS in code and its
peer is not built with it (docs/tls.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.certs import CertificateAuthority
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.peers import PROTO_DIR, java_tls_options, peer_or_skip
from tests.support.protos import compile_descriptor_set

pytestmark = pytest.mark.integration

USERS = "org.apache.dubbo.meshgate.UserService"
GREETER = "meshgate.interop.v1.Greeter"
PEER_ID = "spiffe://cluster.local/ns/dubbo/sa/java-peer"
G1 = {"group": "g1", "version": "1.0.0"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    d = tmp_path_factory.mktemp("dubbo-tls")
    ca = CertificateAuthority("dubbo mesh")
    ca_file = ca.write(d)
    server_pem, server_key = ca.issue(uris=[PEER_ID]).write(d, "java")
    ca.issue(uris=["spiffe://cluster.local/ns/edge/sa/meshgate"]).write(d, "client")
    descriptors = compile_descriptor_set("greeter.proto", d / "greeter.pb", root=PROTO_DIR)
    mtls = {
        "ca": str(ca_file),
        "cert": str(d / "client.pem"),
        "key": str(d / "client.key"),
        "verify_subject_alt_names": [PEER_ID],
    }
    wrong = {**mtls, "verify_subject_alt_names": ["spiffe://cluster.local/ns/dubbo/sa/other"]}
    with peer_or_skip("java", java_tls_options(server_pem, server_key, ca_file)) as peer:

        def cluster(name: str, protocol: str, port: int | None, tls: Any) -> dict[str, Any]:
            out: dict[str, Any] = {"name": name, "protocol": protocol, **G1}
            out["endpoints"] = [{"address": f"127.0.0.1:{port}"}]
            return {**out, "tls": tls} if tls else out

        def route(prefix: str, cluster: str, **kind: Any) -> dict[str, Any]:
            return {"match": {"prefix": prefix}, "cluster": cluster, "timeout": "10s", **kind}

        types = {"echo": ["java.lang.String"]}
        config = {
            "descriptors": [{"file": str(descriptors)}],
            "listeners": [
                {
                    "name": "public",
                    "routes": [
                        route("/tri/", "tri", dubbo={}),
                        route("/dubbo/", "dubbo", dubbo={"parameter_types": types}),
                        route("/wrong-san/", "wrong-san", dubbo={}),
                        route("/plaintext/", "plaintext", dubbo={}),
                        route(
                            f"/{GREETER}/",
                            "tri",
                            transcode={"services": [GREETER], "auto_mapping": True},
                        ),
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
            yield running


def post(gateway: RunningGateway, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{gateway.url}{path}", json=body, timeout=20)


def test_triple_grpc_mode_over_mtls(gateway: RunningGateway) -> None:
    response = post(gateway, f"/{GREETER}/SayHello", {"name": "ada"})
    assert response.status_code == 200, response.text
    assert "ada" in response.json()["message"]


@pytest.mark.parametrize("mode", ["tri", "dubbo"])
def test_triple_json_and_dubbo2_over_mtls(gateway: RunningGateway, mode: str) -> None:
    response = post(gateway, f"/{mode}/{USERS}/echo", ["x"])
    assert response.status_code == 200, response.text
    assert response.json() == "x [java g1/1.0.0]"


def test_a_peer_with_another_identity_is_refused(gateway: RunningGateway) -> None:
    response = post(gateway, f"/wrong-san/{USERS}/echo", ["x"])
    assert response.status_code == 503, response.text
    assert "peer identity rejected" in response.json()["message"]


def test_plaintext_to_the_tls_peer_fails_cleanly(gateway: RunningGateway) -> None:
    response = post(gateway, f"/plaintext/{USERS}/echo", ["x"])
    assert response.status_code == 503, response.text
