"""The tests' own external authorization service: Envoy's
``envoy.service.auth.v3.Authorization/Check`` on grpcio, on loopback.

Its policy reads the ``x-user`` header of the checked request:

* ``alice``: OK, adding ``x-authz-user: alice`` upstream, removing
  ``x-remove-me``, adding ``x-authz: ok`` to the response;
* ``slow``: answers OK after ``SLOW_SECONDS`` (for timeouts);
* ``bob``: denied with 403, a body and an ``x-denied-by`` header;
* absent: denied, UNAUTHENTICATED with HTTP 401.

Every CheckRequest it receives is kept in ``checks``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import status_pb2

SLOW_SECONDS = 1.0


def _header(name: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=name, value=value))


@dataclass
class AuthorizationService(external_auth_pb2_grpc.AuthorizationServicer):
    checks: list[external_auth_pb2.CheckRequest] = field(default_factory=list)

    def Check(
        self, request: external_auth_pb2.CheckRequest, context: grpc.ServicerContext
    ) -> external_auth_pb2.CheckResponse:
        self.checks.append(request)
        user = request.attributes.request.http.headers.get("x-user")
        if user == "slow":
            time.sleep(SLOW_SECONDS)
            user = "alice"
        if user == "alice":
            return external_auth_pb2.CheckResponse(
                status=status_pb2.Status(code=0),
                ok_response=external_auth_pb2.OkHttpResponse(
                    headers=[_header("x-authz-user", "alice")],
                    headers_to_remove=["x-remove-me"],
                    response_headers_to_add=[_header("x-authz", "ok")],
                ),
            )
        if user == "bob":
            return external_auth_pb2.CheckResponse(
                status=status_pb2.Status(code=7),
                denied_response=external_auth_pb2.DeniedHttpResponse(
                    status=http_status_pb2.HttpStatus(code=http_status_pb2.Forbidden),
                    headers=[_header("x-denied-by", "authz")],
                    body="bob may not",
                ),
            )
        return external_auth_pb2.CheckResponse(status=status_pb2.Status(code=16))


@contextmanager
def authorization_server() -> Iterator[tuple[str, AuthorizationService]]:
    """A running server on 127.0.0.1: (its host:port, the service)."""
    service = AuthorizationService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", service
    finally:
        server.stop(grace=None)
