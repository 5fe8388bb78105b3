"""The whole request path in process: listener -> filters -> router -> route
kind -> cluster -> invoker -> (fake) upstream -> route kind, no sockets."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import MutableMapping
from typing import Any

import pytest

from gateway.errors import Code, UpstreamStatus, UpstreamUnavailable
from gateway.exchange import Exchange
from gateway.interrupts import BODY_TIMEOUT, CLIENT_GONE, SCOPE_KEY
from gateway.snapshot import Snapshot, compile_snapshot
from gateway.upstream.call import Call, Reply
from tests.support.in_process import InProcessGateway

pytestmark = pytest.mark.anyio

BOOKSTORE = "meshgate.test.v1.Bookstore"
HEADER = """
descriptors:
  - proto: tests/protos/meshgate/test/v1/bookstore.proto
    include: [tests/protos]
"""


def config(routes: str, clusters: str = "", filters: str = "[]", extra: str = "") -> str:
    return f"""{HEADER}{extra}
listeners:
  - name: public
    address: 127.0.0.1:18080
    filters: {filters}
    routes:
{routes}
clusters:
  - name: books
    endpoints: [{{address: "127.0.0.1:7001"}}, {{address: "127.0.0.1:7002"}}]
{clusters}
"""


TRANSCODE = """      - match: {prefix: /}
        transcode: {services: [meshgate.test.v1.Bookstore], auto_mapping: true}
        cluster: books
        max_request_bytes: 64
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def shelf_reply(gateway: InProcessGateway, **fields: Any) -> Reply:
    return Reply(gateway.message("meshgate.test.v1.Shelf")(**fields).SerializeToString())


async def test_auto_mapped_post_reaches_the_upstream_and_renders_json() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        request = gateway.message("meshgate.test.v1.GetShelfRequest").FromString(call.messages[0])
        return shelf_reply(gateway, id=request.shelf, theme="poetry")

    gateway = InProcessGateway(config(TRANSCODE), handler)
    async with gateway.client() as client:
        response = await client.post(
            f"/{BOOKSTORE}/GetShelf", json={"shelf": "7"}, headers={"x-trace": "abc"}
        )
    assert response.status_code == 200
    assert response.json() == {"id": "7", "theme": "poetry"}
    (seen,) = gateway.calls
    assert seen.call.path == f"/{BOOKSTORE}/GetShelf"
    assert ("x-trace", "abc") in seen.call.metadata
    assert seen.timeout == pytest.approx(15.0, abs=0.5)  # the route's default timeout
    assert gateway.made == ["grpc"]


async def test_not_found_method_not_allowed_and_too_large() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        raise AssertionError("no call expected")

    gateway = InProcessGateway(config(TRANSCODE), handler)
    async with gateway.client() as client:
        missing = await client.post(f"/{BOOKSTORE}/NoSuchMethod", json={})
        wrong_method = await client.delete("/v1/shelves/3/books")
        too_large = await client.post(f"/{BOOKSTORE}/GetShelf", content=b"{" + b" " * 100 + b"}")
    assert missing.status_code == 404 and missing.json()["code"] == Code.NOT_FOUND
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, POST"
    assert too_large.status_code == 413
    assert gateway.calls == []


async def test_rest_precedence_body_beats_path_query_beats_both() -> None:
    seen: list[Any] = []

    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        request_type = gateway.message("meshgate.test.v1.ArchiveShelfRequest")
        seen.append(request_type.FromString(call.messages[0]))
        return Reply(gateway.message("meshgate.test.v1.ArchiveShelfResponse")().SerializeToString())

    gateway = InProcessGateway(config(TRANSCODE), handler)
    async with gateway.client() as client:
        body_wins = await client.post("/v1/shelves/1:archive", json={"shelf": "5", "reason": "r"})
        query_wins = await client.post(
            "/v1/shelves/1:archive?shelf=7&reason=q", json={"shelf": "5", "reason": "r"}
        )
    assert body_wins.status_code == query_wins.status_code == 200
    assert (seen[0].shelf, seen[0].reason) == (5, "r")
    assert (seen[1].shelf, seen[1].reason) == (7, "q")


async def test_stream_failure_after_first_message_is_an_error_record() -> None:
    book = None

    async def handler(address: str, call: Call, timeout: float | None) -> list[Any]:
        return [book, UpstreamUnavailable("backend went away")]

    gateway = InProcessGateway(config(TRANSCODE), handler)
    book = gateway.message("meshgate.test.v1.Book")(title="one").SerializeToString()
    async with gateway.client() as client:
        response = await client.get("/v1/shelves/1/books:stream")
    assert response.status_code == 200
    records = json.loads(response.text)
    assert records[0] == {"title": "one"}
    assert records[1]["error"]["code"] == Code.UNAVAILABLE
    assert response.headers["x-stream"] == "yes"


async def test_upstream_status_maps_to_http_and_json() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        raise UpstreamStatus("no such shelf", grpc_code=Code.NOT_FOUND)

    gateway = InProcessGateway(config(TRANSCODE), handler)
    async with gateway.client() as client:
        response = await client.get("/v1/shelves/9")
    assert response.status_code == 404
    # The error names the request ID the response carries (gateway.request_id).
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "code": 5,
        "message": "no such shelf",
        "details": [],
        "request_id": request_id,
    }


RATE_LIMITED = "[{name: rate_limit, config: {requests_per_second: 0.001, burst: 1}}]"


async def test_reflection_refresh_retries_only_the_lookup_and_keeps_filter_state() -> None:
    """An unknown service triggers one refresh; the filters run once per request
    (a second run would spend a second token and answer 429), and the refreshed
    snapshot keeps the rate limiter's bucket (the next request is limited)."""
    refreshed: list[Snapshot] = []

    def refresh(current: Snapshot) -> Snapshot:
        fresh = compile_snapshot(current.loaded, current.sources, previous=current)
        refreshed.append(fresh)
        return fresh

    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        return shelf_reply(gateway, id=1)

    reflection = "\n  - reflection: {cluster: books}"
    gateway = InProcessGateway(
        config(TRANSCODE, filters=RATE_LIMITED).replace(
            "include: [tests/protos]", "include: [tests/protos]" + reflection
        ),
        handler,
        refresh=refresh,
    )
    async with gateway.client() as client:
        unknown = await client.post("/unknown.v1.Service/Call", json={})
        limited = await client.post(f"/{BOOKSTORE}/GetShelf", json={})
    assert unknown.status_code == 404, unknown.text
    assert len(refreshed) == 1
    assert limited.status_code == 429  # the same bucket, one token spent by the first request
    assert gateway.app.active.snapshot is refreshed[0]


async def test_reload_with_the_same_filter_config_keeps_its_state() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        return shelf_reply(gateway, id=1)

    gateway = InProcessGateway(config(TRANSCODE, filters=RATE_LIMITED), handler)
    async with gateway.client() as client:
        first = await client.post(f"/{BOOKSTORE}/GetShelf", json={})
        current = gateway.app.active.snapshot
        gateway.app.activate(compile_snapshot(current.loaded, current.sources, previous=current))
        second = await client.post(f"/{BOOKSTORE}/GetShelf", json={})
    assert (first.status_code, second.status_code) == (200, 429)


def post_scope(path: str, body_length: int) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-length", str(body_length).encode())],
        "server": ("127.0.0.1", 18080),
        "client": ("127.0.0.9", 1),
    }


async def test_client_disconnect_is_a_quiet_499(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        raise AssertionError("no call expected")

    gateway = InProcessGateway(config(TRANSCODE), handler)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await gateway.app(post_scope(f"/{BOOKSTORE}/GetShelf", 2), receive, send)
    # Nobody is there to read an answer: none is sent.
    assert sent == []
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_client_leaving_mid_call_cancels_it_and_frees_the_slot_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The protocol (gateway.edge_protocol) says why in the scope and cancels
    # the app's task; here the test plays the protocol.
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        if not started.is_set():
            started.set()
            try:
                await asyncio.sleep(60)  # a backend that hangs
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return shelf_reply(gateway, id=7)

    gateway = InProcessGateway(config(TRANSCODE, clusters="    max_requests: 1\n"), handler)

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = post_scope(f"/{BOOKSTORE}/GetShelf", 2)
    serving = asyncio.ensure_future(gateway.app(scope, receive, send))
    await asyncio.wait_for(started.wait(), 10)
    scope[SCOPE_KEY] = CLIENT_GONE
    serving.cancel()
    await asyncio.wait_for(serving, 10)  # quietly done, not cancelled
    assert cancelled.is_set()
    assert sent == []
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    # The cluster allows one request in flight: the slot is free again.
    async with gateway.client() as client:
        reply = await client.post(f"/{BOOKSTORE}/GetShelf", json={})
    assert reply.status_code == 200, reply.text


async def test_late_body_is_a_408_that_closes_the_connection() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        raise AssertionError("no call expected")

    gateway = InProcessGateway(config(TRANSCODE), handler)
    waiting = asyncio.Event()

    async def receive() -> MutableMapping[str, Any]:
        waiting.set()
        await asyncio.sleep(60)  # the body never comes
        raise AssertionError("unreachable")

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = post_scope(f"/{BOOKSTORE}/GetShelf", 2)
    serving = asyncio.ensure_future(gateway.app(scope, receive, send))
    await asyncio.wait_for(waiting.wait(), 10)
    scope[SCOPE_KEY] = BODY_TIMEOUT
    serving.cancel()
    await asyncio.wait_for(serving, 10)
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["code"] == Code.DEADLINE_EXCEEDED


async def test_cancellation_for_another_reason_propagates() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        await asyncio.sleep(60)
        raise AssertionError("unreachable")

    gateway = InProcessGateway(config(TRANSCODE), handler)

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    serving = asyncio.ensure_future(
        gateway.app(post_scope(f"/{BOOKSTORE}/GetShelf", 2), receive, send)
    )
    await asyncio.sleep(0.05)
    serving.cancel()  # a server shutdown, say: not the gateway's to swallow
    with pytest.raises(asyncio.CancelledError):
        await serving


DUBBO_ROUTE = """      - match: {{prefix: /dubbo/}}
        dubbo: {{group: g1}}
        cluster: {cluster}
        retry: {{attempts: 2, on: [unavailable]}}
{extra}"""


async def test_dubbo_route_retries_and_carries_group_and_types() -> None:
    attempts: list[str] = []

    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        attempts.append(address)
        if len(attempts) == 1:
            raise UpstreamUnavailable("first endpoint down")
        return Reply(b'{"ok":true}')

    routes = DUBBO_ROUTE.format(cluster="dubbo-users", extra="")
    clusters = """  - name: dubbo-users
    protocol: dubbo
    version: 1.0.0
    endpoints: [{address: "127.0.0.1:20880"}, {address: "127.0.0.1:20881"}]"""
    gateway = InProcessGateway(config(routes, clusters), handler)
    async with gateway.client() as client:
        response = await client.post(
            "/dubbo/org.example.Users/find",
            content=b'["ann"]',
            headers={"x-dubbo-service-method-overloading": "java.lang.String", "x-tenant": "t1"},
        )
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert len(attempts) == 2 and attempts[0] != attempts[1]  # the retry went elsewhere
    call = gateway.calls[-1].call
    assert (call.service, call.method, call.messages) == ("org.example.Users", "find", [b'["ann"]'])
    assert (call.dubbo.group, call.dubbo.version) == ("g1", "1.0.0")
    assert call.dubbo.parameter_types == ["java.lang.String"]
    assert ("x-tenant", "t1") in call.metadata
    assert gateway.made == ["dubbo2"]


async def test_every_finished_request_is_recorded_for_the_observers() -> None:
    tries: list[str] = []

    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        tries.append(address)
        if len(tries) == 1:
            raise UpstreamUnavailable("first endpoint down")
        return Reply(b'{"ok":true}')

    routes = DUBBO_ROUTE.format(cluster="dubbo-users", extra="        name: users")
    clusters = """  - name: dubbo-users
    protocol: dubbo
    endpoints: [{address: "127.0.0.1:20880"}, {address: "127.0.0.1:20881"}]"""
    gateway = InProcessGateway(config(routes, clusters), handler)
    seen: list[Exchange] = []
    gateway.app.observers.append(seen.append)
    async with gateway.client() as client:
        ok = await client.post("/dubbo/org.example.Users/find", content=b'["ann"]')
        missing = await client.get("/nowhere")
    assert (ok.status_code, missing.status_code) == (200, 404)
    done, not_found = seen
    assert (done.listener, done.method, done.path) == (
        "public",
        "POST",
        "/dubbo/org.example.Users/find",
    )
    assert (done.route, done.cluster, done.upstream) == ("users", "dubbo-users", "dubbo2")
    assert [a.endpoint for a in done.attempts] == tries and done.retries == 1
    assert [a.grpc_status for a in done.attempts] == [Code.UNAVAILABLE, 0]
    assert (done.status, done.grpc_status, done.endpoint) == (200, 0, tries[1])
    assert 0 < done.upstream_seconds <= done.seconds
    assert (not_found.status, not_found.route, not_found.attempts) == (404, "", [])


@pytest.mark.parametrize(
    ("protocol", "client"),
    [("", "triple-json"), ("protocol: dubbo", "dubbo2"), ("protocol: triple", "triple-json")],
)
async def test_dubbo_route_on_an_xds_cluster_picks_the_protocol_from_the_route(
    protocol: str, client: str
) -> None:
    routes = DUBBO_ROUTE.format(
        cluster='"xds:///users.default.svc:20880"',
        extra=f"        {protocol}\n" if protocol else "",
    )
    extra = "mesh: {xds: {bootstrap: bootstrap.json}}\n"
    gateway = InProcessGateway(config(routes, extra=extra), _never)
    (route,) = [r for _, r in gateway.snapshot.listeners[0].routes.entries]
    assert route.upstream == client


async def _never(address: str, call: Call, timeout: float | None) -> Reply:
    raise AssertionError("no call expected")


def test_a_transcode_route_cannot_use_a_dubbo2_cluster() -> None:
    clusters = """  - name: legacy
    protocol: dubbo
    endpoints: [{address: "127.0.0.1:20880"}]"""
    with pytest.raises(Exception, match="protobuf transcoding needs a grpc or triple cluster"):
        InProcessGateway(
            config(TRANSCODE.replace("cluster: books", "cluster: legacy"), clusters), _never
        )


async def test_ring_hash_static_cluster_hashes_on_the_header() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        return shelf_reply(gateway, theme=address)

    clusters = """  - name: hashed
    lb: ring_hash
    hash_policy: [{header: x-user}]
    endpoints: [{address: "127.0.0.1:7101"}, {address: "127.0.0.1:7102"},
                {address: "127.0.0.1:7103"}]"""
    gateway = InProcessGateway(
        config(TRANSCODE.replace("cluster: books", "cluster: hashed"), clusters), handler
    )
    by_user: dict[str, set[str]] = {}
    async with gateway.client() as client:
        for i in range(60):
            user = f"user-{i % 12}"
            response = await client.post(
                f"/{BOOKSTORE}/GetShelf", json={}, headers={"x-user": user}
            )
            by_user.setdefault(user, set()).add(response.json()["theme"])
    assert all(len(endpoints) == 1 for endpoints in by_user.values())
    assert len(Counter(next(iter(e)) for e in by_user.values())) > 1


def test_hash_policy_needs_a_hashing_lb() -> None:
    clusters = """  - name: plain
    hash_policy: [{cookie: session}]
    endpoints: [{address: "127.0.0.1:7101"}]"""
    with pytest.raises(Exception, match="hash_policy needs lb ring_hash or maglev"):
        InProcessGateway(config(TRANSCODE, clusters), _never)


async def test_timeout_header_can_only_shorten_the_route_deadline() -> None:
    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        return shelf_reply(gateway)

    gateway = InProcessGateway(config(TRANSCODE), handler)
    async with gateway.client() as client:
        await client.post(f"/{BOOKSTORE}/GetShelf", json={}, headers={"grpc-timeout": "2S"})
        await client.post(f"/{BOOKSTORE}/GetShelf", json={}, headers={"grpc-timeout": "99S"})
    assert gateway.calls[0].timeout == pytest.approx(2.0, abs=0.1)
    assert gateway.calls[1].timeout == pytest.approx(15.0, abs=0.5)
