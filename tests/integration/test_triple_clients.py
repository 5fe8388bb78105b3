"""The Triple clients of the Java Dubbo and dubbo-go peers (their ``--call`` mode).

Directly (no meshgate): each client calls each server with group/version selection, a business
error, a server stream and a deadline, and a grpcio server records what the clients put on the
wire (the ``tri-*`` metadata meshgate must pass through). Through meshgate: the same calls via a
``protocol: grpc`` listener and a ``triple`` cluster, skipped until the HTTP/2 front door lands
(all 16 passed, unskipped, on a scratch merge with issue-grpc-front at 23c70a6).
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.peers import RunningPeer, compile_greeter_stubs, peer_call, peer_or_skip

pytestmark = pytest.mark.integration

PEERS = ["java", "go"]
GREETER = "meshgate.interop.v1.Greeter"
G1 = {"group": "g1", "version": "1.0.0"}
G2 = {"group": "g2", "version": "2.0.0"}
UNKNOWN = grpc.StatusCode.UNKNOWN.value[0]
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]

# --- servers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def java() -> Iterator[RunningPeer]:
    with peer_or_skip("java") as peer:
        yield peer


@pytest.fixture(scope="module")
def go() -> Iterator[RunningPeer]:
    with peer_or_skip("go") as peer:
        yield peer


@pytest.fixture(params=PEERS)
def server(request: pytest.FixtureRequest) -> RunningPeer:
    peer: RunningPeer = request.getfixturevalue(request.param)
    return peer


@pytest.fixture(params=PEERS)
def client(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


# --- what the answers look like --------------------------------------------------------------


def assert_hello(lines: list[dict[str, Any]], server: str, group: dict[str, str]) -> None:
    served_by = f"{server} {group['group']}/{group['version']}"
    assert lines == [{"message": "hello ada", "served_by": served_by}]


def assert_business_error(lines: list[dict[str, Any]], dubbo_go_sees_http_500: bool) -> None:
    """Fail's FAILED_PRECONDITION, or what dubbo-go's client makes of Java's HTTP 500 answer.

    Java Dubbo 3.3.6 answers a failed gRPC-mode call trailers-only with HTTP :status 500
    (grpc-status 9 beside it); grpcio and the Java client read grpc-status, dubbo-go's client
    stops at the HTTP status (tests/peers/README.md, "Client mode"). Through meshgate the answer
    is a gRPC one with :status 200, so every client sees the status.
    """
    assert len(lines) == 1, lines
    error = lines[0]["error"]
    if dubbo_go_sees_http_500:
        assert error == {"code": UNKNOWN, "message": "HTTP status 500 Internal Server Error"}
        return
    assert error["code"] == FAILED_PRECONDITION, lines
    # Java's server prefixes the message with the status name ("FAILED_PRECONDITION : ...").
    assert error["message"].endswith("greeter business failure for ada"), lines


def assert_stream(lines: list[dict[str, Any]], server: str) -> None:
    assert lines == [
        {"message": f"hello ada #{index}", "served_by": f"{server} g1/1.0.0"} for index in (1, 2, 3)
    ]


def assert_deadline_exceeded(lines: list[dict[str, Any]]) -> None:
    assert len(lines) == 1, lines
    assert lines[0]["error"]["code"] == DEADLINE_EXCEEDED, lines


# --- each client to each server, directly ------------------------------------------------------


def test_say_hello_selects_the_group(client: str, server: RunningPeer) -> None:
    for group in (G1, G2):
        lines = peer_call(client, server.triple_address, method="SayHello", name="ada", **group)
        assert_hello(lines, server.name, group)


def test_fail_gives_the_business_status(client: str, server: RunningPeer) -> None:
    lines = peer_call(client, server.triple_address, method="Fail", name="ada", **G1)
    assert_business_error(lines, dubbo_go_sees_http_500=(client, server.name) == ("go", "java"))


def test_server_stream_gives_three_replies(client: str, server: RunningPeer) -> None:
    lines = peer_call(client, server.triple_address, method="SayHelloStream", name="ada", **G1)
    assert_stream(lines, server.name)


def test_slow_past_the_deadline_is_deadline_exceeded(client: str, server: RunningPeer) -> None:
    lines = peer_call(
        client, server.triple_address, method="Slow", millis=5000, timeout_ms=500, **G1
    )
    assert_deadline_exceeded(lines)


def test_nothing_listening_is_unavailable(client: str) -> None:
    lines = peer_call(client, f"127.0.0.1:{free_port()}", method="SayHello", **G1)
    assert len(lines) == 1 and lines[0]["error"]["code"] == grpc.StatusCode.UNAVAILABLE.value[0]


# --- what the clients send: a grpcio server records it ----------------------------------------


@dataclass
class Seen:
    method: str
    metadata: dict[str, str]
    time_remaining: float | None


@dataclass
class RecordingGreeter:
    """A grpcio Greeter that answers like a g1 peer and records each call's metadata."""

    pb2: ModuleType
    calls: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, context: grpc.ServicerContext) -> None:
        seen = Seen(method, dict(context.invocation_metadata()), context.time_remaining())
        with self.lock:
            self.calls.append(seen)

    def SayHello(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.record("SayHello", context)
        return self.pb2.HelloReply(message=f"hello {request.name}", served_by="grpcio")

    def Fail(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.record("Fail", context)
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"failure for {request.name}")

    def Slow(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.record("Slow", context)
        return self.pb2.HelloReply(message=f"slept {request.millis}ms", served_by="grpcio")

    def SayHelloStream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.record("SayHelloStream", context)
        for index in (1, 2, 3):
            yield self.pb2.HelloReply(message=f"hello {request.name} #{index}", served_by="grpcio")


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, ModuleType]]:
    directory: Path = compile_greeter_stubs(tmp_path_factory.mktemp("greeter_stubs"))
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module("greeter_pb2"), importlib.import_module("greeter_pb2_grpc")
    finally:
        sys.path.remove(str(directory))
        for name in ("greeter_pb2", "greeter_pb2_grpc"):
            sys.modules.pop(name, None)


@pytest.fixture
def recorder(stubs: tuple[ModuleType, ModuleType]) -> Iterator[tuple[RecordingGreeter, str]]:
    pb2, pb2_grpc = stubs
    greeter = RecordingGreeter(pb2)
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb2_grpc.add_GreeterServicer_to_server(greeter, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    try:
        yield greeter, f"127.0.0.1:{port}"
    finally:
        grpc_server.stop(grace=None)


def test_clients_send_group_version_and_deadline_as_metadata(
    client: str, recorder: tuple[RecordingGreeter, str]
) -> None:
    greeter, address = recorder
    assert peer_call(client, address, method="SayHello", name="ada", timeout_ms=7000, **G1) == [
        {"message": "hello ada", "served_by": "grpcio"}
    ]
    lines = peer_call(client, address, method="SayHelloStream", name="ada", **G2)
    assert [line["message"] for line in lines] == [f"hello ada #{i}" for i in (1, 2, 3)]

    unary, stream = greeter.calls
    assert (unary.method, stream.method) == ("SayHello", "SayHelloStream")
    assert unary.metadata["tri-service-group"] == "g1"
    assert unary.metadata["tri-service-version"] == "1.0.0"
    assert stream.metadata["tri-service-group"] == "g2"
    assert stream.metadata["tri-service-version"] == "2.0.0"
    # The unary deadline travels as grpc-timeout (both clients; Java's stream sends none).
    assert unary.time_remaining is not None and 0 < unary.time_remaining <= 7.0


# --- through meshgate --------------------------------------------------------------------------


def grpc_front_door_config(peer: RunningPeer) -> dict[str, Any]:
    """A gRPC (h2c) listener routing the Greeter to the peer's Triple port, nothing else."""
    return {
        "listeners": [
            {
                "name": "grpc",
                "protocol": "grpc",
                "routes": [
                    {
                        "name": "greeter",
                        "match": {"prefix": f"/{GREETER}/"},
                        "cluster": "peer",
                        "timeout": "30s",
                    }
                ],
            }
        ],
        "clusters": [
            {
                "name": "peer",
                "protocol": "triple",
                "endpoints": [{"address": peer.triple_address}],
            }
        ],
    }


def listener_address(gateway: RunningGateway) -> str:
    return gateway.url.removeprefix("http://")


@pytest.fixture(scope="module")
def meshgate_java(
    java: RunningPeer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    with run_gateway(grpc_front_door_config(java), tmp_path_factory.mktemp("mg-java")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def meshgate_go(
    go: RunningPeer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    with run_gateway(grpc_front_door_config(go), tmp_path_factory.mktemp("mg-go")) as gateway:
        yield gateway


@pytest.fixture(params=PEERS)
def fronted(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A server peer's name and the address of the meshgate in front of it."""
    gateway: RunningGateway = request.getfixturevalue(f"meshgate_{request.param}")
    return request.param, listener_address(gateway)


def test_through_meshgate_say_hello_selects_the_group(
    client: str, fronted: tuple[str, str]
) -> None:
    # tri-service-group / tri-service-version pass through meshgate and pick the provider.
    server, address = fronted
    for group in (G1, G2):
        assert_hello(
            peer_call(client, address, method="SayHello", name="ada", **group), server, group
        )


def test_through_meshgate_fail_gives_the_business_status(
    client: str, fronted: tuple[str, str]
) -> None:
    _, address = fronted
    lines = peer_call(client, address, method="Fail", name="ada", **G1)
    assert_business_error(lines, dubbo_go_sees_http_500=False)


def test_through_meshgate_server_stream_gives_three_replies(
    client: str, fronted: tuple[str, str]
) -> None:
    server, address = fronted
    assert_stream(peer_call(client, address, method="SayHelloStream", name="ada", **G1), server)


def test_through_meshgate_slow_past_the_deadline_is_deadline_exceeded(
    client: str, fronted: tuple[str, str]
) -> None:
    _, address = fronted
    lines = peer_call(client, address, method="Slow", millis=5000, timeout_ms=500, **G1)
    assert_deadline_exceeded(lines)
