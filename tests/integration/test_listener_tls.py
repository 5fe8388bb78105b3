"""TLS on listeners, checked from the outside with Python's ssl module and
`openssl s_client`: versions, ciphers, ALPN, SNI, client certificates,
rotation of the files while the gateway runs; a plaintext listener beside a
TLS one stays plaintext."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import split_address
from tests.support.certs import CertificateAuthority, Issued
from tests.support.gateway import run_gateway
from tests.support.net import free_port

pytestmark = pytest.mark.integration

ECHO = "/meshgate.test.v1.EchoService/Echo"
RELOAD = 0.2


class Certs:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = CertificateAuthority("listener root")
        self.ca_file = self.ca.write(directory)
        self.default = self.ca.issue("gw", dns=["gateway.test", "localhost"], ips=["127.0.0.1"])
        self.default.write(directory, "default")
        self.shop = self.ca.issue(dns=["shop.example.com"])
        self.shop.write(directory, "shop")
        self.wild = self.ca.issue(dns=["*.apps.example.com"])
        self.wild.write(directory, "wild")
        self.client = self.ca.issue("client", uris=["spiffe://cluster.local/ns/default/sa/app"])
        self.client.write(directory, "client")
        self.other_ca = CertificateAuthority("someone else")
        self.stranger = self.other_ca.issue("stranger")
        self.stranger.write(directory, "stranger")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


def listener(name: str, echo_set: Path, tls: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "address": f"127.0.0.1:{free_port()}",
        "routes": [
            {
                "name": "rpc",
                "match": {"prefix": "/"},
                "transcode": {"auto_mapping": True},
                "cluster": "echo",
            }
        ],
    }
    if tls is not None:
        out["tls"] = tls
    return out


@dataclass(frozen=True)
class Listeners:
    https: tuple[str, int]  # default + SNI certificates, rotated by the tests
    mtls: tuple[str, int]  # client certificates required
    plain: tuple[str, int]


@pytest.fixture(scope="module")
def gateway(
    certs: Certs, echo_set: Path, backend_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Listeners]:
    d = certs.dir
    config = {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            listener(
                "https",
                echo_set,
                {
                    "cert": str(d / "default.pem"),
                    "key": str(d / "default.key"),
                    "certificates": [
                        {
                            "cert": str(d / "shop.pem"),
                            "key": str(d / "shop.key"),
                            "server_names": ["shop.example.com"],
                        },
                        {
                            "cert": str(d / "wild.pem"),
                            "key": str(d / "wild.key"),
                            "server_names": ["*.apps.example.com"],
                        },
                    ],
                    "reload_interval": f"{RELOAD}s",
                },
            ),
            listener(
                "mtls",
                echo_set,
                {
                    "cert": str(d / "default.pem"),
                    "key": str(d / "default.key"),
                    "client_ca": str(certs.ca_file),
                },
            ),
            listener("plain", echo_set, None),
        ],
        "clusters": [{"name": "echo", "endpoints": [{"address": f"127.0.0.1:{backend_port}"}]}],
    }
    with run_gateway(config, tmp_path_factory.mktemp("gw")):
        yield Listeners(*(split_address(lst["address"]) for lst in config["listeners"]))


def client_context(certs: Certs, **settings: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca_file))
    context.check_hostname = False
    for name, value in settings.items():
        setattr(context, name, value)
    return context


def handshake(
    address: tuple[str, int], context: ssl.SSLContext, server_name: str | None = None
) -> tuple[bytes, ssl.SSLSocket]:
    """The certificate the server presented (DER) and the open TLS socket."""
    raw = socket.create_connection(address, timeout=5)
    tls = context.wrap_socket(raw, server_hostname=server_name)
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der, tls


def der(issued: Issued) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return issued.cert.public_bytes(serialization.Encoding.DER)


def test_https_serves_a_call_and_says_https(gateway: Listeners, certs: Certs) -> None:
    host, port = gateway.https
    with httpx.Client(verify=client_context(certs), timeout=10) as http:
        response = http.post(f"https://{host}:{port}{ECHO}", json={"message": "over tls"})
    assert response.status_code == 200, response.text
    assert response.json()["request"]["message"] == "over tls"


def test_plaintext_listener_stays_plaintext(gateway: Listeners, certs: Certs) -> None:
    host, port = gateway.plain
    response = httpx.post(f"http://{host}:{port}{ECHO}", json={"message": "plain"}, timeout=10)
    assert response.status_code == 200
    with pytest.raises(ssl.SSLError):
        handshake((host, port), client_context(certs))


def test_tls_listener_refuses_plaintext_http(gateway: Listeners) -> None:
    host, port = gateway.https
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"http://{host}:{port}{ECHO}", json={"message": "x"}, timeout=5)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_protocol_versions_are_refused(
    gateway: Listeners, certs: Certs, version: ssl.TLSVersion
) -> None:
    context = client_context(certs)
    context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated is the point
        context.minimum_version = context.maximum_version = version
    with pytest.raises(ssl.SSLError):
        handshake(gateway.https, context)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_are_served(
    gateway: Listeners, certs: Certs, version: ssl.TLSVersion
) -> None:
    context = client_context(certs)
    context.minimum_version = context.maximum_version = version
    _, tls = handshake(gateway.https, context)
    with tls:
        assert tls.version() == ("TLSv1.2" if version == ssl.TLSVersion.TLSv1_2 else "TLSv1.3")


def test_weak_tls_1_2_ciphers_are_refused(gateway: Listeners, certs: Certs) -> None:
    context = client_context(certs)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA:AES256-SHA:AES128-GCM-SHA256")  # no forward secrecy
    with pytest.raises(ssl.SSLError):
        handshake(gateway.https, context)


def test_alpn_offers_h2_then_http_1_1(gateway: Listeners, certs: Certs) -> None:
    context = client_context(certs)
    context.set_alpn_protocols(["h2", "http/1.1"])
    _, tls = handshake(gateway.https, context)
    with tls:
        assert tls.selected_alpn_protocol() == "h2"
    context = client_context(certs)
    context.set_alpn_protocols(["http/1.1"])
    _, tls = handshake(gateway.https, context)
    with tls:
        assert tls.selected_alpn_protocol() == "http/1.1"


@pytest.mark.parametrize(
    ("server_name", "expected"),
    [
        ("shop.example.com", "shop"),
        ("SHOP.example.com", "shop"),
        ("a.apps.example.com", "wild"),
        ("a.b.apps.example.com", "default"),  # a wildcard covers one label only
        ("unknown.example.com", "default"),
        (None, "default"),
    ],
)
def test_sni_picks_the_certificate(
    gateway: Listeners, certs: Certs, server_name: str | None, expected: str
) -> None:
    presented, tls = handshake(gateway.https, client_context(certs), server_name)
    tls.close()
    assert presented == der(getattr(certs, expected))


def test_mtls_listener_requires_a_client_certificate(gateway: Listeners, certs: Certs) -> None:
    host, port = gateway.mtls
    # TLS 1.3 reports the missing certificate on the first read, not the handshake.
    with (
        pytest.raises((ssl.SSLError, httpx.HTTPError)),
        httpx.Client(verify=client_context(certs), timeout=5) as http,
    ):
        http.post(f"https://{host}:{port}{ECHO}", json={"message": "x"})


def test_mtls_listener_refuses_a_certificate_of_another_ca(
    gateway: Listeners, certs: Certs
) -> None:
    host, port = gateway.mtls
    context = client_context(certs)
    context.load_cert_chain(certs.dir / "stranger.pem", certs.dir / "stranger.key")
    with (
        pytest.raises((ssl.SSLError, httpx.HTTPError)),
        httpx.Client(verify=context, timeout=5) as http,
    ):
        http.post(f"https://{host}:{port}{ECHO}", json={"message": "x"})


def test_mtls_listener_serves_a_client_with_a_good_certificate(
    gateway: Listeners, certs: Certs
) -> None:
    host, port = gateway.mtls
    context = client_context(certs)
    context.load_cert_chain(certs.dir / "client.pem", certs.dir / "client.key")
    with httpx.Client(verify=context, timeout=10) as http:
        response = http.post(f"https://{host}:{port}{ECHO}", json={"message": "mutual"})
    assert response.status_code == 200, response.text


def test_rotated_files_are_served_without_a_restart(gateway: Listeners, certs: Certs) -> None:
    address = gateway.https
    context = client_context(certs)
    before, open_tls = handshake(address, context, "shop.example.com")
    assert before == der(certs.shop)
    rotated = certs.ca.issue(dns=["shop.example.com"])
    rotated.write(certs.dir, "shop")
    deadline = time.monotonic() + 10
    presented = before
    while presented != der(rotated) and time.monotonic() < deadline:
        time.sleep(RELOAD)
        presented, tls = handshake(address, context, "shop.example.com")
        tls.close()
    assert presented == der(rotated)
    # The connection opened before the rotation still works.
    open_tls.sendall(
        b"POST " + ECHO.encode() + b" HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 2\r\nconnection: close\r\n\r\n{}"
    )
    assert open_tls.recv(64).startswith(b"HTTP/1.1 200")
    open_tls.close()
    certs.shop = rotated


def test_a_broken_rotation_keeps_the_last_good_certificate(
    gateway: Listeners, certs: Certs
) -> None:
    address = gateway.https
    (certs.dir / "wild.key").write_bytes(certs.ca.issue().key_pem)  # key of another cert
    time.sleep(RELOAD * 3)
    presented, tls = handshake(address, client_context(certs), "x.apps.example.com")
    tls.close()
    assert presented == der(certs.wild)
    certs.wild.write(certs.dir, "wild")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_sees_tls_1_3_and_alpn(gateway: Listeners, certs: Certs) -> None:
    host, port = gateway.https
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"{host}:{port}",
            "-servername",
            "shop.example.com",
            "-alpn",
            "h2,http/1.1",
            "-CAfile",
            str(certs.ca_file),
        ],
        input=b"",
        capture_output=True,
        timeout=20,
    )
    # After the handshake the server speaks HTTP/2 (its SETTINGS frame): binary.
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert "New, TLSv1.3" in output, output
    assert "ALPN protocol: h2" in output, output
    assert "Verify return code: 0 (ok)" in output, output
