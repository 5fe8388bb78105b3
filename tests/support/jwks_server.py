"""An identity provider's JWKS endpoint over HTTPS on loopback, for the
jwt_auth tests: serves whatever ``document`` holds now (so a test rotates
keys by replacing it), or fails with 500 while ``failing`` is set."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.tls_ca import ServerFiles, make_loopback_certs


@dataclass
class JwksEndpoint:
    url: str
    tls: ServerFiles
    document: dict[str, Any] = field(default_factory=dict)
    failing: bool = False
    fetches: int = 0


@contextmanager
def jwks_server(directory: Path, document: dict[str, Any]) -> Iterator[JwksEndpoint]:
    tls = make_loopback_certs(directory)
    endpoint = JwksEndpoint("", tls, document)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            endpoint.fetches += 1
            if endpoint.failing or self.path != "/jwks.json":
                self.send_response(500 if endpoint.failing else 404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            body = json.dumps(endpoint.document).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    endpoint.url = f"https://127.0.0.1:{server.server_address[1]}/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
