from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from filters import FilterConfigError, build_filter
from filters.http import Handler, HttpRequest, HttpResponse

SHOP = "https://shop.example"
CONFIG: dict[str, Any] = {
    "allow_origins": [SHOP, r"regex:https://[a-z]+\.example\.com"],
    "allow_origin_regex": [r"https://[a-z]+\.test"],
    "allow_methods": ["GET", "POST"],
    "allow_headers": ["content-type", "authorization"],
    "expose_headers": ["x-request-id"],
    "max_age": 600,
}


def respond(handler: Handler, request: HttpRequest) -> HttpResponse:
    async def call() -> HttpResponse:
        return await handler(request)

    return asyncio.run(call())


class Upstream:
    def __init__(self, headers: list[tuple[str, str]] | None = None) -> None:
        self.headers = headers if headers is not None else [("content-type", "text/plain")]
        self.requests: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return HttpResponse(200, list(self.headers), b"ok")


def send(
    request: HttpRequest, config: dict[str, Any] = CONFIG, upstream: Upstream | None = None
) -> tuple[HttpResponse, Upstream]:
    upstream = upstream or Upstream()
    return respond(build_filter("cors", config)(upstream), request), upstream


def preflight(origin: str) -> HttpRequest:
    headers = [("origin", origin), ("access-control-request-method", "POST")]
    return HttpRequest("OPTIONS", "/v1/items", b"", headers)


def actual(origin: str | None, method: str = "GET") -> HttpRequest:
    headers = [("origin", origin)] if origin is not None else []
    return HttpRequest(method, "/v1/items", b"", headers)


def values(response: HttpResponse, name: str) -> list[str]:
    return [v for n, v in response.headers if n.lower() == name]


def test_allowed_preflight_is_answered_without_the_upstream() -> None:
    response, upstream = send(preflight(SHOP))

    assert response.status == 204
    assert upstream.requests == []
    assert dict(response.headers) == {
        "access-control-allow-origin": SHOP,
        "access-control-allow-methods": "GET, POST",
        "access-control-allow-headers": "content-type, authorization",
        "access-control-max-age": "600",
        "vary": "Origin",
    }


def test_disallowed_preflight_is_refused_with_a_json_error() -> None:
    response, upstream = send(preflight("https://evil.example"))

    assert response.status == 403
    assert upstream.requests == []
    assert values(response, "content-type") == ["application/json"]
    assert orjson.loads(response.body) == {
        "code": 7,
        "message": "CORS origin not allowed",
        "details": [],
    }
    assert values(response, "access-control-allow-origin") == []


@pytest.mark.parametrize(
    "origin",
    ["https://shop.example", "https://api.example.com", "https://dev.test"],
)
def test_exact_and_regex_origins_are_allowed(origin: str) -> None:
    response, _ = send(preflight(origin))

    assert response.status == 204
    assert values(response, "access-control-allow-origin") == [origin]


@pytest.mark.parametrize(
    "origin",
    [
        "https://api.example.com.evil.net",  # a regex must match the whole origin
        "http://shop.example",  # scheme is part of the origin
        "https://shop.example:8443",
        "https://SHOP.example.com",
        "null",
    ],
)
def test_near_miss_origins_are_refused(origin: str) -> None:
    response, _ = send(preflight(origin))

    assert response.status == 403


def test_wildcard_with_credentials_echoes_the_origin_never_star() -> None:
    config = {"allow_origins": ["*"], "allow_credentials": True}

    refused_nothing, _ = send(preflight("https://anyone.example"), config)
    actual_response, _ = send(actual("https://anyone.example"), config)

    for response in (refused_nothing, actual_response):
        assert values(response, "access-control-allow-origin") == ["https://anyone.example"]
        assert values(response, "access-control-allow-credentials") == ["true"]


def test_allowed_actual_request_reaches_upstream_and_gets_cors_headers() -> None:
    config = {**CONFIG, "allow_credentials": True}
    upstream = Upstream([("content-type", "text/plain"), ("access-control-allow-origin", "*")])

    response, _ = send(actual(SHOP, "POST"), config, upstream)

    assert len(upstream.requests) == 1
    assert (response.status, response.body) == (200, b"ok")
    assert values(response, "access-control-allow-origin") == [SHOP]
    assert values(response, "access-control-allow-credentials") == ["true"]
    assert values(response, "access-control-expose-headers") == ["x-request-id"]
    assert values(response, "vary") == ["Origin"]
    assert values(response, "access-control-max-age") == []


def test_existing_vary_is_kept_and_origin_not_repeated() -> None:
    other = Upstream([("Vary", "Accept-Encoding")])
    already = Upstream([("vary", "accept-encoding, origin")])

    with_other, _ = send(actual(SHOP), upstream=other)
    with_origin, _ = send(actual(SHOP), upstream=already)

    assert values(with_other, "vary") == ["Accept-Encoding", "Origin"]
    assert values(with_origin, "vary") == ["accept-encoding, origin"]


def test_disallowed_actual_request_is_forwarded_without_allow_origin() -> None:
    response, upstream = send(actual("https://evil.example"))

    assert len(upstream.requests) == 1
    assert values(response, "access-control-allow-origin") == []
    assert values(response, "vary") == ["Origin"]


def test_request_without_origin_passes_untouched() -> None:
    response, upstream = send(actual(None))

    assert len(upstream.requests) == 1
    assert response.headers == upstream.headers


def test_options_without_request_method_is_not_a_preflight() -> None:
    request = HttpRequest("OPTIONS", "/", b"", [("origin", SHOP)])

    response, upstream = send(request)

    assert len(upstream.requests) == 1
    assert response.status == 200
    assert values(response, "access-control-allow-origin") == [SHOP]


def test_empty_config_allows_no_origin() -> None:
    response, _ = send(preflight(SHOP), {})

    assert response.status == 403


@pytest.mark.parametrize(
    "config",
    [
        {"allow_origin_regex": ["https://(unclosed"]},
        {"allow_origins": ["regex:["]},
        {"allow_methods": ["GET POST"]},
        {"allow_headers": ["x-bad:name"]},
        {"max_age": -1},
    ],
)
def test_invalid_config_is_rejected_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(FilterConfigError, match="'cors'"):
        build_filter("cors", config)
