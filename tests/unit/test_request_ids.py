"""Request IDs: the sans-IO rule, and the app in process (headers, upstream
metadata and dubbo2 attachments, error bodies, the setting turned off)."""

from __future__ import annotations

import pytest

from gateway.errors import UpstreamStatus
from gateway.request_id import assign_request_id, is_sane, new_request_id
from gateway.upstream.call import Call, Reply
from gateway.upstream.dubbo import build_invocation
from gateway.upstream.generic import GenericCall
from tests.support.in_process import InProcessGateway

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_made_ids_are_32_hex_digits_and_differ() -> None:
    made = {new_request_id() for _ in range(1000)}
    assert len(made) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in made)


@pytest.mark.parametrize(
    ("value", "sane"),
    [
        ("abc-123", True),
        ("A" * 128, True),
        ("!~", True),
        ("", False),
        ("A" * 129, False),
        ("a b", False),
        ("tab\t", False),
        ("caf\u00e9", False),
        ("line\nbreak", False),
    ],
)
def test_sane(value: str, sane: bool) -> None:
    assert is_sane(value) is sane


def test_a_sane_id_is_kept_and_the_headers_untouched() -> None:
    headers = [("host", "h"), ("x-request-id", "keep-me")]
    assert assign_request_id(headers) == "keep-me"
    assert headers == [("host", "h"), ("x-request-id", "keep-me")]


@pytest.mark.parametrize(
    "sent",
    [[], [("x-request-id", "bad value")], [("x-request-id", "a"), ("x-request-id", "b")]],
    ids=["absent", "not-sane", "repeated"],
)
def test_otherwise_one_is_made_and_replaces_every_value(sent: list[tuple[str, str]]) -> None:
    headers = [("host", "h"), *sent]
    made = assign_request_id(headers)
    assert headers == [("host", "h"), ("x-request-id", made)]


def test_an_untrusted_client_id_is_replaced() -> None:
    headers = [("x-request-id", "keep-me")]
    made = assign_request_id(headers, trust_client=False)
    assert made != "keep-me" and headers == [("x-request-id", made)]


def test_another_header_name() -> None:
    headers = [("x-request-id", "other"), ("x-trace", "t-1")]
    assert assign_request_id(headers, "x-trace") == "t-1"


CONFIG = """
descriptors:
  - proto: tests/protos/meshgate/test/v1/bookstore.proto
    include: [tests/protos]
{extra}
listeners:
  - name: public
    address: 127.0.0.1:18080
    filters: {filters}
    routes:
      - match: {{prefix: /dubbo/}}
        dubbo: {{}}
        cluster: users
      - match: {{prefix: /}}
        transcode: {{services: [meshgate.test.v1.Bookstore], auto_mapping: true}}
        cluster: books
clusters:
  - name: books
    endpoints: [{{address: "127.0.0.1:7001"}}]
  - name: users
    protocol: dubbo
    endpoints: [{{address: "127.0.0.1:20880"}}]
"""
SHELF = "/meshgate.test.v1.Bookstore/GetShelf"


async def ok(address: str, call: Call, timeout: float | None) -> Reply:
    return Reply(b"")


async def test_the_id_goes_upstream_as_metadata_and_as_a_dubbo2_attachment() -> None:
    gateway = InProcessGateway(CONFIG.format(filters="[]", extra=""), ok)
    async with gateway.client() as client:
        grpc = await client.post(SHELF, json={}, headers={"x-request-id": "from-client"})
        dubbo = await client.post(
            "/dubbo/org.example.Users/find",
            content=b"[1]",
            headers={"x-dubbo-service-method-overloading": "int"},
        )
    assert grpc.headers["x-request-id"] == "from-client"
    made = dubbo.headers["x-request-id"]
    assert len(made) == 32
    to_grpc, to_dubbo = (seen.call for seen in gateway.calls)
    assert ("x-request-id", "from-client") in to_grpc.metadata
    assert gateway.made == ["grpc", "dubbo2"]
    # The dubbo2 client sends a call's metadata as the invocation's attachments.
    invocation = build_invocation(GenericCall.from_call(to_dubbo, None))
    assert invocation.attachments["x-request-id"] == made


async def test_a_backend_echo_does_not_double_the_response_header() -> None:
    async def echoing(address: str, call: Call, timeout: float | None) -> Reply:
        return Reply(b"", initial_metadata=(("x-request-id", "echoed"),))

    gateway = InProcessGateway(CONFIG.format(filters="[]", extra=""), echoing)
    async with gateway.client() as client:
        response = await client.post(SHELF, json={}, headers={"x-request-id": "mine"})
    assert response.headers.get_list("x-request-id") == ["mine"]


async def test_error_bodies_name_the_id() -> None:
    async def failing(address: str, call: Call, timeout: float | None) -> Reply:
        raise UpstreamStatus("no shelf", grpc_code=5)

    gateway = InProcessGateway(CONFIG.format(filters="[]", extra=""), failing)
    async with gateway.client() as client:
        failed = await client.post(SHELF, json={}, headers={"x-request-id": "rid-9"})
        no_route = await client.get("/nowhere/at/all", headers={"x-request-id": "rid-10"})
    assert failed.json() == {
        "code": 5,
        "message": "no shelf",
        "details": [],
        "request_id": "rid-9",
    }
    assert no_route.status_code >= 400
    assert no_route.json()["request_id"] == "rid-10"


async def test_another_header_and_no_response_header() -> None:
    extra = "request_id: {header: x-correlation-id, response: false, trust_client: false}"
    gateway = InProcessGateway(CONFIG.format(filters="[]", extra=extra), ok)
    async with gateway.client() as client:
        response = await client.post(SHELF, json={}, headers={"x-correlation-id": "client"})
    assert "x-correlation-id" not in response.headers
    (seen,) = gateway.calls
    made = dict(seen.call.metadata)["x-correlation-id"]
    assert made != "client" and len(made) == 32


async def test_turned_off_nothing_is_added() -> None:
    async def failing(address: str, call: Call, timeout: float | None) -> Reply:
        raise UpstreamStatus("no shelf", grpc_code=5)

    gateway = InProcessGateway(
        CONFIG.format(filters="[]", extra="request_id: {enabled: false}"), failing
    )
    async with gateway.client() as client:
        response = await client.post(SHELF, json={})
    assert "x-request-id" not in response.headers
    assert response.json() == {"code": 5, "message": "no shelf", "details": []}
    (seen,) = gateway.calls
    assert "x-request-id" not in dict(seen.call.metadata)


async def test_a_filters_refusal_names_the_id_too() -> None:
    limit = "[{name: rate_limit, config: {requests_per_second: 0.001, burst: 1}}]"
    gateway = InProcessGateway(CONFIG.format(filters=limit, extra=""), ok)
    async with gateway.client() as client:
        first = await client.post(SHELF, json={})
        refused = await client.post(SHELF, json={}, headers={"x-request-id": "limited-1"})
    assert (first.status_code, refused.status_code) == (200, 429)
    assert refused.json()["request_id"] == "limited-1"
    assert refused.headers["x-request-id"] == "limited-1"
