"""ext_authz, sans-IO parts: the CheckRequest built from a request, and how
the service's answer changes the request or becomes the refusal. The calls
over gRPC are in tests/integration/test_auth_filters.py and
test_auth_in_process.py, against the tests' own Authorization service."""

from __future__ import annotations

import json

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2
from envoy.type.v3 import http_status_pb2
from google.protobuf import wrappers_pb2
from google.rpc import status_pb2

from filters.ext_authz import _allowed, _denied, check_request
from filters.http import HttpRequest


def option(name: str, value: str, append: bool | None = None) -> base_pb2.HeaderValueOption:
    made = base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=name, value=value))
    if append is not None:
        made.append.CopyFrom(wrappers_pb2.BoolValue(value=append))
    return made


def test_check_request_describes_the_http_request() -> None:
    request = HttpRequest(
        "POST",
        "/v1/a b",
        b"q=1",
        [("host", "shop.test"), ("x-a", "1"), ("x-a", "2"), ("x-request-id", "r-1")],
        ("192.0.2.4", 5050),
        raw_path=b"/v1/a%20b",
    )
    check = check_request(request, {"route": "public"}).attributes
    http = check.request.http
    assert (http.method, http.path, http.host, http.id) == (
        "POST",
        "/v1/a%20b?q=1",
        "shop.test",
        "r-1",
    )
    assert http.headers["x-a"] == "1,2"
    assert check.source.address.socket_address.address == "192.0.2.4"
    assert check.source.address.socket_address.port_value == 5050
    assert dict(check.context_extensions) == {"route": "public"}


def test_ok_response_sets_appends_and_removes_but_not_protected_headers() -> None:
    request = HttpRequest(
        "GET", "/", b"", [("x-set", "old"), ("x-add", "a"), ("x-drop", "1"), ("host", "h")]
    )
    ok = external_auth_pb2.OkHttpResponse(
        headers=[
            option("x-set", "new"),
            option("x-add", "b", append=True),
            option("host", "evil"),
            option(":path", "/admin"),
        ],
        headers_to_remove=["x-drop", "host"],
    )
    changed = _allowed(request, ok)
    assert changed.header_list == [("x-add", "a"), ("host", "h"), ("x-set", "new"), ("x-add", "b")]


def test_denial_keeps_the_service_status_headers_and_body_as_message() -> None:
    response = external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=7),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http_status_pb2.TooManyRequests),
            headers=[option("retry-after", "3"), option("content-type", "text/html")],
            body="x" * 5000,
        ),
    )
    denied = _denied(response)
    assert denied.status == 429
    assert ("retry-after", "3") in denied.headers
    assert dict(denied.headers)["content-type"] == "application/json"
    assert len(json.loads(denied.body)["message"]) == 1024


def test_denial_without_http_status_is_403_or_401_for_unauthenticated() -> None:
    forbidden = _denied(external_auth_pb2.CheckResponse(status=status_pb2.Status(code=7)))
    unauthenticated = _denied(external_auth_pb2.CheckResponse(status=status_pb2.Status(code=16)))
    assert (forbidden.status, unauthenticated.status) == (403, 401)
    assert json.loads(unauthenticated.body)["code"] == 16
