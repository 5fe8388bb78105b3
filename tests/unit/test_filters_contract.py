"""The contract every registered filter keeps, run over the whole registry.

A new filter joins the suite by adding a sample config below; the first test
fails until it does.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filters import REGISTRY, FilterConfigError, build_filter
from filters.http import Handler, HttpRequest, HttpResponse

AUTH_DATA = Path(__file__).resolve().parents[1] / "data" / "auth"

# Configs that switch each filter's features on, so the contract is checked
# against the code paths users run, not only against a filter that does nothing.
SAMPLE_CONFIGS: dict[str, dict[str, Any]] = {
    "cors": {
        "allow_origins": ["https://shop.example", r"regex:https://[a-z]+\.example\.com"],
        "allow_origin_regex": [r"https://.*\.test"],
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["content-type"],
        "expose_headers": ["x-request-id"],
        "max_age": 600,
        "allow_credentials": True,
    },
    "rate_limit": {"requests_per_second": 100, "burst": 200, "key": "header:x-api-key"},
    "headers": {
        "request": {
            "set": {"x-client": "%DOWNSTREAM_REMOTE_ADDRESS%"},
            "add": {"x-tenant": "%REQ(x-api-key)%"},
            "remove": ["cookie"],
        },
        "response": {"set": {"x-echo": "%REQ(origin)%"}, "remove": ["server"]},
    },
    # A request without a token passes (allow_missing); one with a token must verify.
    "jwt_auth": {
        "providers": [
            {
                "name": "contract",
                "issuer": "https://id.meshgate.test",
                "audiences": ["shop"],
                "jwks": {"file": str(AUTH_DATA / "contract-jwks.json")},
                "from": [
                    {"header": "authorization", "prefix": "Bearer "},
                    {"query": "access_token"},
                    {"cookie": "session"},
                ],
                "forward_claims": {"header": "x-jwt-claims"},
                "claims_to_headers": {"sub": "x-user"},
            }
        ],
        "require": {"allow_missing": True},
    },
    "api_key": {
        "keys_file": str(AUTH_DATA / "contract-api-keys.txt"),
        "from": [{"header": "x-api-key"}, {"query": "api_key"}],
        "name_header": "x-api-key-name",
    },
    # Nothing listens on port 1: every check fails fast, and failure_mode_allow
    # lets the request through, so the contract sees the filter's whole path.
    "ext_authz": {"target": "127.0.0.1:1", "timeout": "2s", "failure_mode_allow": True},
    "rbac": {
        "trusted_proxies": ["10.0.0.0/8"],
        "deny": [{"paths": ["/admin/*"]}, {"headers": {"x-blocked": ["*"]}}],
        "allow": [
            {"methods": ["GET"], "paths": ["/v1/*"]},
            {"source_ips": ["10.0.0.0/8"], "not_paths": ["/private*"]},
            {"claims": [{"path": "groups", "values": ["admin"]}]},
        ],
    },
}

# Headers that make a plain request acceptable to filters that authenticate.
CREDENTIALS: dict[str, list[tuple[str, str]]] = {"api_key": [("x-api-key", "contract-key")]}

# Header names the sample configs look at, so odd values reach the filters' logic.
INSPECTED_HEADERS = [
    "origin",
    "access-control-request-method",
    "access-control-request-headers",
    "x-api-key",
    "cookie",
    "vary",
    "authorization",
    "x-forwarded-for",
    "x-jwt-claims",
]


def respond(handler: Handler, request: HttpRequest) -> HttpResponse:
    async def call() -> HttpResponse:
        return await handler(request)

    return asyncio.run(call())


class Upstream:
    """The next handler: records what reached it and answers a fixed response."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return HttpResponse(
            status=201,
            headers=[("content-type", "text/plain"), ("server", "backend")],
            body=b"from upstream",
        )


def call(name: str, request: HttpRequest) -> tuple[HttpResponse, Upstream]:
    upstream = Upstream()
    handler = build_filter(name, SAMPLE_CONFIGS[name])(upstream)
    return respond(handler, request), upstream


@pytest.fixture(params=sorted(REGISTRY))
def filter_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_every_registered_filter_has_a_sample_config() -> None:
    assert sorted(SAMPLE_CONFIGS) == sorted(REGISTRY)


def test_plain_get_reaches_the_next_handler_once(filter_name: str) -> None:
    request = HttpRequest(
        method="GET",
        path="/v1/items",
        query_string=b"page=2",
        header_list=[("accept", "application/json"), *CREDENTIALS.get(filter_name, [])],
        client=("10.0.0.7", 40000),
    )

    response, upstream = call(filter_name, request)

    assert len(upstream.requests) == 1
    forwarded = upstream.requests[0]
    assert (forwarded.method, forwarded.path, forwarded.query_string) == (
        "GET",
        "/v1/items",
        b"page=2",
    )
    assert forwarded.headers["accept"] == "application/json"
    assert (response.status, response.body) == (201, b"from upstream")


def test_unknown_config_key_is_a_config_error_naming_the_filter(filter_name: str) -> None:
    config = {**SAMPLE_CONFIGS[filter_name], "no_such_option": 1}

    with pytest.raises(FilterConfigError) as raised:
        build_filter(filter_name, config)

    assert repr(filter_name) in str(raised.value)
    assert "no_such_option" in str(raised.value)


ODD_REQUESTS = {
    "no headers at all": HttpRequest("GET", "/", b"", []),
    "no headers, no client, OPTIONS": HttpRequest("OPTIONS", "/", b"", [], client=None),
    "non-ascii values": HttpRequest(
        "OPTIONS",
        "/ü",
        "q=é".encode(),
        [(name, "héllo \u00ff ünïcödé") for name in INSPECTED_HEADERS],
        client=("::1", 1),
    ),
    "megabyte values": HttpRequest(
        "POST",
        "/",
        b"",
        [(name, "x" * 1_000_000) for name in INSPECTED_HEADERS],
        client=("10.0.0.1", 2),
    ),
    "repeated and empty values": HttpRequest(
        "OPTIONS",
        "/",
        b"",
        [
            (name, value)
            for name in INSPECTED_HEADERS
            for value in ("", ",", "https://shop.example")
        ],
    ),
}


@pytest.mark.parametrize("request_", ODD_REQUESTS.values(), ids=ODD_REQUESTS.keys())
def test_odd_requests_get_an_answer_not_an_exception(
    filter_name: str, request_: HttpRequest
) -> None:
    response, _ = call(filter_name, request_)

    assert 100 <= response.status <= 599


header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=200,
)
header_lists = st.lists(
    st.tuples(st.sampled_from([*INSPECTED_HEADERS, "host", "x-other"]), header_values),
    max_size=8,
)


@pytest.mark.parametrize("name", sorted(REGISTRY))
# No deadline: ext_authz dials its (absent) service on loopback, and a unit test
# asserts behaviour, not timing, on a shared machine.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "OPTIONS", "POST", "DELETE"]),
    header_list=header_lists,
)
def test_any_latin1_headers_get_an_answer(
    name: str, method: str, header_list: list[tuple[str, str]]
) -> None:
    response, upstream = call(name, HttpRequest(method, "/", b"", header_list, ("1.2.3.4", 5)))

    assert 100 <= response.status <= 599
    assert len(upstream.requests) <= 1


# A request each filter refuses with its sample config (filters that never
# refuse on their own, like headers, are not listed).
REFUSED = {
    "cors": HttpRequest(
        "OPTIONS",
        "/",
        b"",
        [("origin", "https://evil.example"), ("access-control-request-method", "GET")],
    ),
    "jwt_auth": HttpRequest("GET", "/", b"", [("authorization", "Bearer not.a.jwt")]),
    "api_key": HttpRequest("GET", "/", b"", []),
    "rbac": HttpRequest("GET", "/admin/x", b"", [], ("10.0.0.1", 1)),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_refusal_is_a_json_status_and_never_reaches_the_upstream(name: str) -> None:
    response, upstream = call(name, REFUSED[name])

    assert 400 <= response.status <= 499
    assert upstream.requests == []
    assert dict(response.headers)["content-type"] == "application/json"
    body = json.loads(response.body)
    assert set(body) == {"code", "message", "details"}
    assert isinstance(body["code"], int) and body["message"]
