"""External authorization over gRPC, as Envoy's ext_authz filter.

Each request is described to an ``envoy.service.auth.v3.Authorization``
service (``Check``): the method, path (with query), host, headers and the
client's address. OPA's Envoy plugin and any service written to Envoy's API
answer it unchanged.

* OK: the request goes on, with the headers the service returned set (or
  appended, when it asks) and the headers it names removed; its
  ``response_headers_to_add`` are added to the response.
* Denied: the service's HTTP status (403 when it gives none) and headers go
  back to the client; the JSON error body carries the service's body text
  as its message (at most 1 KiB).
* No answer within ``timeout``, or an error: with ``failure_mode_allow`` the
  request goes on (marked ``x-envoy-auth-failure-mode-allowed: true``, as
  Envoy does); otherwise it is refused with ``status_on_error``. That
  defaults to 503, not Envoy's 403: the authorization service failing is an
  outage the client may retry, not a verdict on the request.

Config (YAML)::

    - name: ext_authz
      config:
        target: 127.0.0.1:9191          # the Authorization service (plaintext gRPC)
        timeout: 200ms
        failure_mode_allow: false
        status_on_error: 503
        context_extensions: {route: public}
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2, external_auth_pb2_grpc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from filters.credentials import appended_headers, without_headers
from filters.errors import PERMISSION_DENIED, UNAVAILABLE, error_response
from filters.http import Filter, Handler, HttpRequest, HttpResponse
from filters.settings import Duration

log = logging.getLogger(f"meshgate.{__name__}")

FAILURE_MODE_HEADER = "x-envoy-auth-failure-mode-allowed"
MAX_DENIAL_MESSAGE = 1024
# Headers an authorization service may not set or remove on the request.
PROTECTED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# gRPC code -> HTTP status, for denials that carry no HTTP status.
_GRPC_CODE_UNAUTHENTICATED = 16


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    target: str
    """host:port of the Authorization service (gRPC over plaintext, loopback or mesh)."""
    timeout: Duration = 0.2
    """How long the Check call may take."""
    failure_mode_allow: bool = False
    """Let requests through when the service cannot answer."""
    status_on_error: int = Field(default=503, ge=400, le=599)
    """The status of a refusal because the service could not answer."""
    context_extensions: dict[str, str] = Field(default_factory=dict)
    """Sent in every CheckRequest (Envoy's per-route context_extensions)."""

    @field_validator("target")
    @classmethod
    def _host_port(cls, target: str) -> str:
        host, sep, port = target.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"invalid target {target!r}: expected host:port")
        return target


class AuthorizationClient:
    """One channel per event loop (grpc.aio channels belong to the loop they start on)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stub: external_auth_pb2_grpc.AuthorizationStub | None = None

    def stub(self) -> external_auth_pb2_grpc.AuthorizationStub:
        loop = asyncio.get_running_loop()
        if self._stub is None or self._loop is not loop:
            channel = grpc.aio.insecure_channel(self.target)
            self._loop, self._stub = loop, external_auth_pb2_grpc.AuthorizationStub(channel)
        return self._stub


def check_request(
    request: HttpRequest, extensions: dict[str, str]
) -> external_auth_pb2.CheckRequest:
    """The request as the Authorization service sees it (Envoy's AttributeContext)."""
    attributes = attribute_context_pb2.AttributeContext()
    if request.client is not None:
        address = attributes.source.address.socket_address
        address.address, address.port_value = request.client[0], request.client[1]
    http = attributes.request.http
    http.method = request.method
    path = request.target_path
    http.path = f"{path}?{request.query_string.decode('latin-1')}" if request.query_string else path
    http.host = request.headers.get("host", "")
    http.scheme = "http"
    http.protocol = "HTTP/1.1"
    http.id = request.headers.get("x-request-id", "")
    for name, value in request.headers.items():
        http.headers[name] = value
    attributes.context_extensions.update(extensions)
    return external_auth_pb2.CheckRequest(attributes=attributes)


def _header_changes(
    options: Sequence[base_pb2.HeaderValueOption],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(replace, append) lists from the service's HeaderValueOptions.

    As Envoy documents for this message, ``append`` defaults to false here: a
    header replaces the request's own unless ``append: true``.
    """
    replace: list[tuple[str, str]] = []
    append: list[tuple[str, str]] = []
    for option in options:
        name, value = option.header.key.lower(), option.header.value
        if not name or name in PROTECTED_HEADERS or name.startswith(":"):
            continue
        appends = option.HasField("append") and option.append.value
        (append if appends else replace).append((name, value))
    return replace, append


def _allowed(request: HttpRequest, ok: external_auth_pb2.OkHttpResponse) -> HttpRequest:
    replace, append = _header_changes(ok.headers)
    removed = frozenset(
        n.lower() for n in ok.headers_to_remove if n.lower() not in PROTECTED_HEADERS
    )
    request = without_headers(request, removed | {n for n, _ in replace})
    return appended_headers(request, [*replace, *append])


def _denied(response: external_auth_pb2.CheckResponse) -> HttpResponse:
    denied = response.denied_response
    status = denied.status.code if denied.HasField("status") and denied.status.code >= 400 else 0
    if not status:
        status = 401 if response.status.code == _GRPC_CODE_UNAUTHENTICATED else 403
    replace, append = _header_changes(denied.headers)
    message = denied.body[:MAX_DENIAL_MESSAGE] or "access denied by the authorization service"
    grpc_code = _GRPC_CODE_UNAUTHENTICATED if status == 401 else PERMISSION_DENIED
    headers = [(n, v) for n, v in [*replace, *append] if n != "content-type"]
    return error_response(status, grpc_code, message, headers)


def build(config: Config) -> Filter:
    client = AuthorizationClient(config.target)
    extensions = dict(config.context_extensions)

    def ext_authz(next_handler: Handler) -> Handler:
        async def handle(request: HttpRequest) -> HttpResponse:
            request = without_headers(request, frozenset({FAILURE_MODE_HEADER}))
            try:
                response: Any = await client.stub().Check(
                    check_request(request, extensions), timeout=config.timeout
                )
            except grpc.aio.AioRpcError as exc:
                log.warning("ext_authz %s: %s %s", config.target, exc.code().name, exc.details())
                if not config.failure_mode_allow:
                    return error_response(
                        config.status_on_error, UNAVAILABLE, "authorization service unavailable"
                    )
                marked = appended_headers(request, [(FAILURE_MODE_HEADER, "true")])
                return await next_handler(marked)
            if response.status.code != 0:
                return _denied(response)
            request = _allowed(request, response.ok_response)
            reply = await next_handler(request)
            extra, more = _header_changes(response.ok_response.response_headers_to_add)
            reply.headers.extend([*extra, *more])
            return reply

        return handle

    return ext_authz
