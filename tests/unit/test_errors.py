from __future__ import annotations

import orjson
import pytest

from gateway.errors import (
    GRPC_TO_HTTP,
    BadRequest,
    GatewayError,
    MethodNotAllowed,
    PayloadTooLarge,
    RouteNotFound,
    UpstreamStatus,
    http_status_for,
)

# The table from gRPC's doc/http-grpc-status-mapping.md, as the issue states it.
EXPECTED = {
    0: 200,
    1: 499,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    6: 409,
    7: 403,
    8: 429,
    9: 400,
    10: 409,
    11: 400,
    12: 501,
    13: 500,
    14: 503,
    15: 500,
    16: 401,
}


def test_status_table() -> None:
    assert GRPC_TO_HTTP == EXPECTED


def test_codes_outside_the_table_are_unknown() -> None:
    assert http_status_for(99) == 500


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (BadRequest("x"), 400, 3),
        (PayloadTooLarge("x"), 413, 8),
        (RouteNotFound("x"), 404, 5),
        (MethodNotAllowed("x"), 405, 12),
        (UpstreamStatus("x", grpc_code=7), 403, 7),
        (GatewayError("x"), 500, 2),
    ],
)
def test_each_error_has_a_status_and_a_status_body(
    error: GatewayError, status: int, code: int
) -> None:
    assert error.status == status
    assert orjson.loads(error.body()) == {"code": code, "message": "x", "details": []}
