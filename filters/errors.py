"""Error responses a filter answers with instead of calling the next handler.

The body has the gateway's google.rpc.Status shape, ``{"code", "message",
"details"}`` and the request's ``request_id``, so a client parses a filter's
refusal exactly like a router or upstream failure. Kept here rather than
imported from ``gateway`` so that filters stay self-contained.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from filters.http import HttpResponse, current_request_id

PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14
UNAUTHENTICATED = 16


def error_response(
    status: int,
    grpc_code: int,
    message: str,
    headers: Iterable[tuple[str, str]] = (),
) -> HttpResponse:
    fields: dict[str, object] = {"code": grpc_code, "message": message, "details": []}
    request_id = current_request_id.get()
    if request_id:
        fields["request_id"] = request_id
    body = orjson.dumps(fields)
    return HttpResponse(
        status=status,
        headers=[("content-type", "application/json"), *headers],
        body=body,
    )
