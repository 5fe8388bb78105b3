from __future__ import annotations

import asyncio
from typing import Any

import pytest

from filters import FilterConfigError, build_filter
from filters.http import Handler, HttpRequest, HttpResponse


def respond(handler: Handler, request: HttpRequest) -> HttpResponse:
    async def call() -> HttpResponse:
        return await handler(request)

    return asyncio.run(call())


class Upstream:
    def __init__(self, headers: list[tuple[str, str]] | None = None) -> None:
        self.headers = headers or []
        self.requests: list[HttpRequest] = []
        self.bodies: list[bytes] = []

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        self.bodies.append(await request.read_body(1024))
        return HttpResponse(200, list(self.headers), b"ok")


def send(
    config: dict[str, Any],
    header_list: list[tuple[str, str]] | None = None,
    client: tuple[str, int] | None = ("10.1.2.3", 5678),
    upstream: Upstream | None = None,
) -> tuple[HttpResponse, Upstream]:
    upstream = upstream or Upstream()
    request = HttpRequest("GET", "/", b"", header_list or [], client=client)
    return respond(build_filter("headers", config)(upstream), request), upstream


def forwarded(upstream: Upstream) -> list[tuple[str, str]]:
    return upstream.requests[0].header_list


def test_set_replaces_every_value_and_add_appends() -> None:
    config = {"request": {"set": {"X-Env": "prod"}, "add": {"x-tag": "gw"}}}

    _, upstream = send(config, [("x-env", "a"), ("x-env", "b"), ("x-tag", "client")])

    assert forwarded(upstream) == [("x-tag", "client"), ("x-env", "prod"), ("x-tag", "gw")]
    assert upstream.requests[0].headers["x-tag"] == "client,gw"


def test_remove_drops_every_value_and_runs_before_add() -> None:
    config = {"request": {"remove": ["cookie", "x-tag"], "add": {"x-tag": "gw"}}}

    _, upstream = send(config, [("cookie", "a=1"), ("cookie", "b=2"), ("x-tag", "client")])

    assert forwarded(upstream) == [("x-tag", "gw")]


def test_next_handler_sees_the_new_headers_even_if_they_were_read_before() -> None:
    request = HttpRequest("GET", "/", b"", [("x-env", "old")])
    assert request.headers["x-env"] == "old"  # fills the joined-headers cache
    upstream = Upstream()
    handler = build_filter("headers", {"request": {"set": {"x-env": "new"}}})(upstream)

    respond(handler, request)

    assert upstream.requests[0].headers["x-env"] == "new"


def test_body_and_attributes_survive_request_mutation() -> None:
    sent = [{"type": "http.request", "body": b"payload", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return sent.pop()

    request = HttpRequest("POST", "/", b"", [], receive=receive, attributes={"route": "r1"})
    upstream = Upstream()
    handler = build_filter("headers", {"request": {"set": {"x-a": "1"}}})(upstream)

    respond(handler, request)

    assert upstream.bodies == [b"payload"]
    assert upstream.requests[0].attributes == {"route": "r1"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("%REQ(x-api-key)%", "k1,k2"),
        ("%REQ(X-Api-Key)%", "k1,k2"),
        ("key=%REQ(x-api-key)%;ip=%DOWNSTREAM_REMOTE_ADDRESS%", "key=k1,k2;ip=10.1.2.3:5678"),
        ("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.1.2.3"),
        ("100%%", "100%"),
        ("plain", "plain"),
    ],
)
def test_values_substitute_from_the_request(template: str, expected: str) -> None:
    config = {"request": {"set": {"x-out": template}}}

    _, upstream = send(config, [("x-api-key", "k1"), ("x-api-key", "k2")])

    assert upstream.requests[0].headers["x-out"] == expected


def test_ipv6_remote_address_is_bracketed() -> None:
    config = {"request": {"set": {"x-client": "%DOWNSTREAM_REMOTE_ADDRESS%"}}}

    _, upstream = send(config, client=("2001:db8::1", 443))

    assert upstream.requests[0].headers["x-client"] == "[2001:db8::1]:443"


def test_empty_substitution_writes_nothing_and_keeps_the_old_value() -> None:
    config = {
        "request": {
            "set": {"x-tenant": "%REQ(x-missing)%", "x-client": "%DOWNSTREAM_REMOTE_ADDRESS%"},
            "add": {"x-extra": "%REQ(x-missing)%"},
        }
    }

    _, upstream = send(config, [("x-tenant", "kept")], client=None)

    assert forwarded(upstream) == [("x-tenant", "kept")]


def test_response_headers_are_changed_case_insensitively() -> None:
    config = {
        "response": {
            "set": {"cache-control": "no-store"},
            "add": {"x-gateway": "meshgate"},
            "remove": ["server"],
        }
    }
    upstream = Upstream([("Server", "backend"), ("Cache-Control", "max-age=60"), ("x-a", "1")])

    response, _ = send(config, upstream=upstream)

    assert response.headers == [
        ("x-a", "1"),
        ("cache-control", "no-store"),
        ("x-gateway", "meshgate"),
    ]
    assert (response.status, response.body) == (200, b"ok")


def test_response_values_come_from_the_request_as_the_client_sent_it() -> None:
    config = {
        "request": {"remove": ["x-request-id"]},
        "response": {"set": {"x-request-id": "%REQ(x-request-id)%"}},
    }

    response, upstream = send(config, [("x-request-id", "abc")])

    assert forwarded(upstream) == []
    assert response.headers == [("x-request-id", "abc")]


def test_empty_config_changes_nothing() -> None:
    upstream = Upstream([("x-a", "1")])

    response, _ = send({}, [("x-b", "2")], upstream=upstream)

    assert forwarded(upstream) == [("x-b", "2")]
    assert response.headers == [("x-a", "1")]


@pytest.mark.parametrize(
    "config",
    [
        {"request": {"set": {"x-a": "%UNKNOWN%"}}},
        {"request": {"set": {"x-a": "50%"}}},
        {"request": {"add": {"x-a": "%REQ(bad name)%"}}},
        {"response": {"set": {"x-a": "line\r\nx-injected: 1"}}},
        {"response": {"set": {"bad name": "v"}}},
        {"request": {"remove": ["x:a"]}},
        {"request": {"append": {"x-a": "v"}}},
    ],
)
def test_invalid_config_is_rejected_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(FilterConfigError, match="'headers'"):
        build_filter("headers", config)
