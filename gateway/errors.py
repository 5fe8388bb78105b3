"""Every error the gateway answers with, in one tree.

    GatewayError                 carries a gRPC code and the HTTP status it maps to
    ├── BadRequest               400, INVALID_ARGUMENT: the client's JSON, headers or query
    ├── PayloadTooLarge          413, the request body exceeds the route's limit
    ├── RouteNotFound            404, no route, service or method matches
    │   └── UnknownService       the service may yet arrive by server reflection
    ├── MethodNotAllowed         405, the path is known but not for this HTTP method
    ├── UpstreamStatus           the backend answered with a non-OK gRPC status
    └── UpstreamUnavailable      503, no endpoint, or the backend cannot be reached

Errors are data (DESIGN.md, principle 5): each renders as a google.rpc.Status
shaped JSON body, ``{"code": ..., "message": ..., "details": [...]}``, so a
client parses every failure the same way. gRPC and httpx exceptions are
translated into this tree where they enter the gateway, never later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

# The mapping gRPC itself documents (and Envoy applies) from status code to
# HTTP status: doc/http-grpc-status-mapping.md, in the reverse direction.
GRPC_TO_HTTP: dict[int, int] = {
    0: 200,  # OK
    1: 499,  # CANCELLED
    2: 500,  # UNKNOWN
    3: 400,  # INVALID_ARGUMENT
    4: 504,  # DEADLINE_EXCEEDED
    5: 404,  # NOT_FOUND
    6: 409,  # ALREADY_EXISTS
    7: 403,  # PERMISSION_DENIED
    8: 429,  # RESOURCE_EXHAUSTED
    9: 400,  # FAILED_PRECONDITION
    10: 409,  # ABORTED
    11: 400,  # OUT_OF_RANGE
    12: 501,  # UNIMPLEMENTED
    13: 500,  # INTERNAL
    14: 503,  # UNAVAILABLE
    15: 500,  # DATA_LOSS
    16: 401,  # UNAUTHENTICATED
}

GRPC_CODE_NAMES: dict[int, str] = {
    0: "ok",
    1: "cancelled",
    2: "unknown",
    3: "invalid_argument",
    4: "deadline_exceeded",
    5: "not_found",
    6: "already_exists",
    7: "permission_denied",
    8: "resource_exhausted",
    9: "failed_precondition",
    10: "aborted",
    11: "out_of_range",
    12: "unimplemented",
    13: "internal",
    14: "unavailable",
    15: "data_loss",
    16: "unauthenticated",
}
GRPC_CODES_BY_NAME: dict[str, int] = {name: code for code, name in GRPC_CODE_NAMES.items()}


def http_status_for(grpc_code: int) -> int:
    """HTTP status for a gRPC code; codes outside the table are UNKNOWN."""
    return GRPC_TO_HTTP.get(grpc_code, 500)


class GatewayError(Exception):
    grpc_code: int = 2
    http_status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        grpc_code: int | None = None,
        http_status: int | None = None,
        details: Sequence[Any] = (),
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
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
        return orjson.dumps(
            {"code": self.grpc_code, "message": self.message, "details": self.details}
        )


class BadRequest(GatewayError):
    grpc_code = 3


class PayloadTooLarge(GatewayError):
    grpc_code = 8
    http_status = 413


class RouteNotFound(GatewayError):
    grpc_code = 5
    http_status = 404


class UnknownService(RouteNotFound):
    """No such service yet; the app may fetch descriptors by reflection and retry."""


class MethodNotAllowed(GatewayError):
    grpc_code = 12
    http_status = 405


class UpstreamStatus(GatewayError):
    """A non-OK gRPC status from the backend, carried through unchanged."""


class UpstreamUnavailable(GatewayError):
    grpc_code = 14
