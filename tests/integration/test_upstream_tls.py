"""TLS and mTLS from meshgate to static clusters, against grpcio backends with
``ssl_server_credentials(require_client_auth=True)``: SPIFFE SAN checks, host
name checks, a wrong SAN, another CA, an expired certificate, a missing client
certificate, and the client certificate rotated while calls are in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.certs import CertificateAuthority
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import echo_backend

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"
SHOP = "spiffe://cluster.local/ns/default/sa/shop"
GATEWAY = "spiffe://cluster.local/ns/edge/sa/meshgate"
GATEWAY_V2 = "spiffe://cluster.local/ns/edge/sa/meshgate-rotated"


@dataclass
class Backends:
    good: int  # mTLS, SPIFFE + DNS SANs from the mesh CA
    other_ca: int  # a certificate from a CA meshgate does not trust
    expired: int
    wrong_san: int  # the mesh CA, another workload's SPIFFE ID
    aging: int  # mTLS; drops connections after a while (GOAWAY), for rotation
    directory: Path
    ca: CertificateAuthority


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    d = tmp_path_factory.mktemp("upstream-certs")
    ca = CertificateAuthority("mesh root")
    ca_file = ca.write(d)
    ca.issue(uris=[SHOP], dns=["shop.internal"]).write(d, "shop")
    CertificateAuthority("elsewhere").issue(uris=[SHOP], dns=["shop.internal"]).write(d, "foreign")
    ca.issue(uris=[SHOP], dns=["shop.internal"], expired=True).write(d, "expired")
    ca.issue(uris=["spiffe://cluster.local/ns/default/sa/other"]).write(d, "other")
    ca.issue(uris=[GATEWAY]).write(d, "client")
    ports = [free_port() for _ in range(5)]

    def tls(name: str, *more: str) -> tuple[str, ...]:
        return ("--tls-cert", str(d / f"{name}.pem"), "--tls-key", str(d / f"{name}.key"), *more)

    mtls = ("--tls-ca", str(ca_file))
    with ExitStack() as stack:
        stack.enter_context(echo_backend(ports[0], "good", *tls("shop", *mtls)))
        stack.enter_context(echo_backend(ports[1], "foreign", *tls("foreign")))
        stack.enter_context(echo_backend(ports[2], "expired", *tls("expired")))
        stack.enter_context(echo_backend(ports[3], "other", *tls("other", *mtls)))
        stack.enter_context(
            echo_backend(ports[4], "aging", *tls("shop", *mtls, "--max-connection-age-ms", "1000"))
        )
        good, other_ca, expired, wrong_san, aging = ports
        yield Backends(good, other_ca, expired, wrong_san, aging, directory=d, ca=ca)


def cluster(name: str, port: int, tls: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "endpoints": [{"address": f"127.0.0.1:{port}"}]}
    if tls is not None:
        out["tls"] = tls
    return out


@pytest.fixture(scope="module")
def gateway(
    backends: Backends, echo_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    d = backends.directory
    rotating = tmp_path_factory.mktemp("rotating")
    backends.ca.issue(uris=[GATEWAY]).write(rotating, "client")
    mesh = {"ca": str(d / "ca.pem"), "cert": str(d / "client.pem"), "key": str(d / "client.key")}
    clusters = [
        cluster("spiffe", backends.good, {**mesh, "verify_subject_alt_names": [SHOP]}),
        cluster("by-name", backends.good, {**mesh, "sni": "shop.internal"}),
        cluster(
            "any-of", backends.good, {**mesh, "verify_subject_alt_names": ["x", "shop.internal"]}
        ),
        cluster("wrong-san", backends.wrong_san, {**mesh, "verify_subject_alt_names": [SHOP]}),
        cluster("other-ca", backends.other_ca, {**mesh, "verify_subject_alt_names": [SHOP]}),
        cluster("expired", backends.expired, {**mesh, "verify_subject_alt_names": [SHOP]}),
        cluster(
            "no-client-cert",
            backends.good,
            {"ca": str(d / "ca.pem"), "verify_subject_alt_names": [SHOP]},
        ),
        cluster("plaintext", backends.good, None),
        cluster(
            "rotating",
            backends.aging,
            {
                "ca": str(d / "ca.pem"),
                "cert": str(rotating / "client.pem"),
                "key": str(rotating / "client.key"),
                "verify_subject_alt_names": [SHOP],
                "reload_interval": "0.1s",
            },
        ),
    ]
    routes = [
        {
            "name": c["name"],
            "match": {"prefix": "/", "headers": [{"name": "x-cluster", "exact": c["name"]}]},
            "transcode": {"auto_mapping": True},
            "cluster": c["name"],
            "timeout": "10s",
        }
        for c in clusters
    ]
    config = {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [{"name": "public", "routes": routes}],
        "clusters": clusters,
    }
    with run_gateway(config, tmp_path_factory.mktemp("gw")) as running:
        running.rotating = rotating  # type: ignore[attr-defined]
        yield running


def call(gateway: RunningGateway, cluster: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{ECHO}",
        json={"message": "hi", **body},
        headers={"x-cluster": cluster},
        timeout=20,
    )


@pytest.mark.parametrize("name", ["spiffe", "by-name", "any-of"])
def test_mtls_call_reaches_the_backend_with_the_gateway_identity(
    gateway: RunningGateway, name: str
) -> None:
    response = call(gateway, name)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["servedBy"] == "good"
    assert reply["metadata"]["x-client-identity"] == GATEWAY


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("wrong-san", "peer identity rejected"),
        ("other-ca", "certificate verification failed"),
        ("expired", "certificate verification failed"),
        ("no-client-cert", "unavailable"),
        ("plaintext", "unavailable"),
    ],
)
def test_untrusted_or_refusing_backends_give_503(
    gateway: RunningGateway, name: str, reason: str
) -> None:
    response = call(gateway, name)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["code"] == 14
    # The body hides internals (addresses, the transport's socket); the log says why.
    assert body["message"] == "upstream unavailable", body
    assert gateway.logged(reason) if reason != "unavailable" else True


def test_rotated_client_certificate_reaches_new_connections_without_dropping_calls(
    gateway: RunningGateway, backends: Backends
) -> None:
    first = call(gateway, "rotating")
    assert first.json()["metadata"]["x-client-identity"] == GATEWAY
    slow: dict[str, httpx.Response] = {}
    in_flight = threading.Thread(
        target=lambda: slow.update(r=call(gateway, "rotating", delay_seconds=2.5))
    )
    in_flight.start()
    time.sleep(0.3)
    backends.ca.issue(uris=[GATEWAY_V2]).write(gateway.rotating, "client")  # type: ignore[attr-defined]
    # The backend ends each connection after a second (GOAWAY); the next one
    # is made with the new certificate.
    seen = set()
    deadline = time.monotonic() + 15
    while GATEWAY_V2 not in seen and time.monotonic() < deadline:
        response = call(gateway, "rotating")
        assert response.status_code == 200, response.text
        seen.add(response.json()["metadata"]["x-client-identity"])
        time.sleep(0.2)
    assert GATEWAY_V2 in seen
    in_flight.join(timeout=20)
    assert slow["r"].status_code == 200, slow["r"].text
