"""Each active health probe against a real server on loopback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.upstream.health_probe import Prober
from mesh.xds.cluster import HealthCheck
from tests.support.net import free_port
from tests.support.processes import echo_backend

pytestmark = pytest.mark.integration


class Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def probe(check: HealthCheck, address: str) -> bool:
    async def once() -> bool:
        prober = Prober()
        try:
            return await prober.probe(check, address)
        finally:
            await prober.close()

    return asyncio.run(once())


def test_http_probe_wants_a_2xx_on_its_path(http_server: ThreadingHTTPServer) -> None:
    address = f"127.0.0.1:{http_server.server_address[1]}"
    assert probe(HealthCheck("http", http_path="/healthz"), address)
    assert not probe(HealthCheck("http", http_path="/missing"), address)
    Health.status = 503
    try:
        assert not probe(HealthCheck("http", http_path="/healthz"), address)
    finally:
        Health.status = 200


def test_tcp_probe_is_a_connect(http_server: ThreadingHTTPServer) -> None:
    assert probe(HealthCheck("tcp"), f"127.0.0.1:{http_server.server_address[1]}")
    assert not probe(HealthCheck("tcp", timeout_s=0.5), f"127.0.0.1:{free_port()}")


def test_grpc_probe_asks_grpc_health_v1(tmp_path: Path) -> None:
    port = free_port()
    control = tmp_path / "control"
    with echo_backend(port, "probed", control=control):
        address = f"127.0.0.1:{port}"
        assert probe(HealthCheck("grpc"), address)
        assert probe(HealthCheck("grpc", grpc_service="meshgate.test.v1.EchoService"), address)
        assert not probe(HealthCheck("grpc", grpc_service="no.Such"), address)  # NOT_FOUND
        control.write_text("unavailable")
        assert not probe(HealthCheck("grpc"), address)  # NOT_SERVING
    assert not probe(HealthCheck("grpc", timeout_s=0.5), address)  # gone
