"""Error responses a filter answers with instead of calling the next handler.

The body has the gateway's google.rpc.Status shape, ``{"code", "message",
"details"}``, so a client parses a filter's refusal exactly like a router or
upstream failure. Kept here rather than imported from ``gateway`` so that
filters stay self-contained.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from filters.http import HttpResponse

PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14


def error_response(
    status: int,
    grpc_code: int,
    message: str,
    headers: Iterable[tuple[str, str]] = (),
) -> HttpResponse:
    body = orjson.dumps({"code": grpc_code, "message": message, "details": []})
    return HttpResponse(
        status=status,
        headers=[("content-type", "application/json"), *headers],
        body=body,
    )
