"""Reading the gateway's JSON error bodies in tests."""

from __future__ import annotations

from typing import Any

import httpx


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The error body without its ``request_id``, which must be the ID the
    response carries in ``x-request-id`` (gateway.request_id)."""
    body: dict[str, Any] = response.json()
    assert body.pop("request_id") == response.headers["x-request-id"], (body, response.headers)
    return body
