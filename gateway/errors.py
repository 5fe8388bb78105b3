"""Every error the gateway answers with, in one tree.

    GatewayError                 carries a gRPC code and the HTTP status it maps to
    ├── BadRequest               400, INVALID_ARGUMENT: the client's JSON, headers or query
    ├── PayloadTooLarge          413, the request body exceeds the route's limit
    ├── RequestTimeout           408, the request's headers or body came too slowly
    ├── UriTooLong               414, the request target exceeds the listener's limit
    ├── HeadersTooLarge          431, the request headers exceed the listener's limits
    ├── RouteNotFound            404, no route, service or method matches
    │   └── UnknownService       the service may yet arrive by server reflection
    ├── MethodNotAllowed         405, the path is known but not for this HTTP method
    ├── UpstreamStatus           the backend answered with a non-OK gRPC status
    ├── UpstreamUnavailable      503, no endpoint, or the backend cannot be reached
    ├── BadUpstreamResponse      502, the reply broke a local limit or was not parseable
    └── ClientClosedRequest      499, the client disconnected before the reply

Errors are data (DESIGN.md, principle 5): each renders as a google.rpc.Status
shaped JSON body, ``{"code": ..., "message": ..., "details": [...]}``, so a
client parses every failure the same way; ``"request_id"`` follows when the
request has one. A message is cut to
MAX_MESSAGE_CHARS: messages quote client input, which is not bounded. gRPC and httpx exceptions are
translated into this tree where they enter the gateway, never later.

What the client reads is not always what the operator needs: a failure to
reach a backend names its address (``ipv4:10.0.3.7:50051: Failed to
connect``), which tells an outsider the network's layout. Such errors carry a
``public_message``; the body shows it and the full message goes to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import orjson

from filters.http import HttpResponse
from gateway.request_id import current_request_id

log = logging.getLogger(f"meshgate.{__name__}")


class Code(IntEnum):
    """gRPC status codes (grpc/doc/statuscodes.md)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# The mapping gRPC itself documents (and Envoy applies) from status code to
# HTTP status: doc/http-grpc-status-mapping.md, in the reverse direction.
GRPC_TO_HTTP: dict[int, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}

GRPC_CODE_NAMES: dict[int, str] = {code: code.name.lower() for code in Code}
GRPC_CODES_BY_NAME: dict[str, int] = {name: code for code, name in GRPC_CODE_NAMES.items()}


def http_status_for(grpc_code: int) -> int:
    """HTTP status for a gRPC code; codes outside the table are UNKNOWN."""
    return GRPC_TO_HTTP.get(grpc_code, 500)


# Long enough for any message the gateway words; client input quoted in a
# message (a header value, a field name) is cut there.
MAX_MESSAGE_CHARS = 1024


def bounded(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    if len(message) <= limit:
        return message
    suffix = f"... ({len(message)} chars)"
    return message[: limit - len(suffix)] + suffix


class GatewayError(Exception):
    grpc_code: int = Code.UNKNOWN
    http_status: int | None = None
    # Shown to the client instead of ``message`` (kept for the log) when set.
    public_message: str | None = None

    def __init__(
        self,
        message: str,
        *,
        grpc_code: int | None = None,
        http_status: int | None = None,
        details: Sequence[Any] = (),
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        message = bounded(message)
        super().__init__(message)
        self.message = message
        if grpc_code is not None:
            self.grpc_code = grpc_code
        if http_status is not None:
            self.http_status = http_status
        self.details = list(details)
        self.headers = list(headers)

    @property
    def status(self) -> int:
        return self.http_status if self.http_status is not None else http_status_for(self.grpc_code)

    def body(self) -> bytes:
        message = self.public_message or self.message
        status = {"code": self.grpc_code, "message": message, "details": self.details}
        # The request's ID (gateway.request_id), so a client's report names the
        # log lines; absent outside a request or when request IDs are off.
        request_id = current_request_id.get()
        if request_id:
            status["request_id"] = request_id
        return orjson.dumps(status)


class BadRequest(GatewayError):
    grpc_code = Code.INVALID_ARGUMENT


class PayloadTooLarge(GatewayError):
    grpc_code = Code.RESOURCE_EXHAUSTED
    http_status = 413


class RequestTimeout(GatewayError):
    grpc_code = Code.DEADLINE_EXCEEDED
    http_status = 408


class UriTooLong(GatewayError):
    grpc_code = Code.INVALID_ARGUMENT
    http_status = 414


class HeadersTooLarge(GatewayError):
    grpc_code = Code.INVALID_ARGUMENT
    http_status = 431


class RouteNotFound(GatewayError):
    grpc_code = Code.NOT_FOUND
    http_status = 404


class UnknownService(RouteNotFound):
    """No such service yet; the app may fetch descriptors by reflection and retry."""


class MethodNotAllowed(GatewayError):
    grpc_code = Code.UNIMPLEMENTED
    http_status = 405


class UpstreamStatus(GatewayError):
    """A non-OK gRPC status from the backend, carried through unchanged."""


# Why an upstream could not answer, where the transport tells (Envoy's retry_on names).
CONNECT_FAILURE = "connect_failure"  # no connection: refused, unreachable, timed out
REFUSED_STREAM = "refused_stream"  # the server refused the stream before processing it
RESET = "reset"  # the connection or stream broke under the request


class UpstreamUnavailable(GatewayError):
    """503: no endpoint, or the backend cannot be reached; ``cause`` says how, when
    known. The reason names addresses and clusters, so the client is told only
    this much."""

    grpc_code = Code.UNAVAILABLE
    public_message: str | None = "upstream unavailable"

    def __init__(self, message: str, *, cause: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.cause = cause


class BadUpstreamResponse(GatewayError):
    """The backend's reply exceeded max_response_bytes or broke its framing.

    Local size and frame errors are not the backend's RESOURCE_EXHAUSTED: a 502,
    never a 429, which would tell the client to retry."""

    grpc_code = Code.INTERNAL
    http_status = 502


class ClientClosedRequest(GatewayError):
    """The client went away before the reply (nginx's 499); counted, never logged."""

    grpc_code = Code.CANCELLED
    http_status = 499


JSON_HEADERS = (("content-type", "application/json"),)


def error_response(error: GatewayError) -> HttpResponse:
    """The JSON answer for an error, as every listener sends it."""
    if error.public_message is not None and error.public_message != error.message:
        log.warning("%s (answered as %r)", error.message, error.public_message)
    return HttpResponse(error.status, [*JSON_HEADERS, *error.headers], error.body())
