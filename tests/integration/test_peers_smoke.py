"""The real Dubbo peers serve what tests/peers/README.md promises.

grpcio speaks Triple's gRPC-compatible mode, httpx its HTTP/JSON unary mode; the dubbo2 ports
are only checked to accept connections (the dubbo2 codec is tested elsewhere).
"""

from __future__ import annotations

import importlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import httpx
import pytest

from tests.support.peers import RunningPeer, compile_greeter_stubs, peer_or_skip

pytestmark = pytest.mark.integration

G1 = (("tri-service-group", "g1"), ("tri-service-version", "1.0.0"))
G2 = (("tri-service-group", "g2"), ("tri-service-version", "2.0.0"))
GROUPED_PEERS = ["java", "go"]
ALL_PEERS = ["java", "go", "python"]
GREETER = "meshgate.interop.v1.Greeter"
USER_SERVICE = "org.apache.dubbo.meshgate.UserService"


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


@pytest.fixture(scope="module")
def java() -> Iterator[RunningPeer]:
    with peer_or_skip("java") as peer:
        yield peer


@pytest.fixture(scope="module")
def go() -> Iterator[RunningPeer]:
    with peer_or_skip("go") as peer:
        yield peer


@pytest.fixture(scope="module")
def python() -> Iterator[RunningPeer]:
    with peer_or_skip("python") as peer:
        yield peer


@pytest.fixture(params=ALL_PEERS)
def any_peer(request: pytest.FixtureRequest) -> RunningPeer:
    peer: RunningPeer = request.getfixturevalue(request.param)
    return peer


@pytest.fixture(params=GROUPED_PEERS)
def grouped_peer(request: pytest.FixtureRequest) -> RunningPeer:
    peer: RunningPeer = request.getfixturevalue(request.param)
    return peer


def greeter_stub(peer: RunningPeer, stubs: tuple[ModuleType, ModuleType]) -> Iterator[Any]:
    with grpc.insecure_channel(peer.triple_address) as channel:
        yield stubs[1].GreeterStub(channel)


@pytest.fixture
def greeter(any_peer: RunningPeer, stubs: tuple[ModuleType, ModuleType]) -> Iterator[Any]:
    yield from greeter_stub(any_peer, stubs)


@pytest.fixture
def grouped_greeter(
    grouped_peer: RunningPeer, stubs: tuple[ModuleType, ModuleType]
) -> Iterator[Any]:
    yield from greeter_stub(grouped_peer, stubs)


def metadata_for(peer: RunningPeer) -> tuple[tuple[str, str], ...]:
    """g1 where the peer has groups; the Python SDK has none."""
    return () if peer.name == "python" else G1


def served_by(peer: RunningPeer, group_version: str) -> str:
    return "python" if peer.name == "python" else f"{peer.name} {group_version}"


# --- gRPC-compatible mode --------------------------------------------------------------------


def test_say_hello(greeter: Any, any_peer: RunningPeer, stubs: tuple[ModuleType, ...]) -> None:
    reply = greeter.SayHello(
        stubs[0].HelloRequest(name="ada"), metadata=metadata_for(any_peer), timeout=30
    )
    assert reply.message == "hello ada"
    assert reply.served_by == served_by(any_peer, "g1/1.0.0")


@pytest.mark.parametrize(("metadata", "expected"), [(G1, "g1/1.0.0"), (G2, "g2/2.0.0")])
def test_group_and_version_select_the_provider(
    grouped_greeter: Any,
    grouped_peer: RunningPeer,
    stubs: tuple[ModuleType, ...],
    metadata: tuple[tuple[str, str], ...],
    expected: str,
) -> None:
    reply = grouped_greeter.SayHello(stubs[0].HelloRequest(name="x"), metadata=metadata, timeout=30)
    assert reply.served_by == f"{grouped_peer.name} {expected}"


def test_without_group_headers_java_falls_back_and_go_refuses(
    grouped_greeter: Any, grouped_peer: RunningPeer, stubs: tuple[ModuleType, ...]
) -> None:
    request = stubs[0].HelloRequest(name="x")
    if grouped_peer.name == "java":
        assert grouped_greeter.SayHello(request, timeout=30).served_by.startswith("java g")
        return
    with pytest.raises(grpc.RpcError) as caught:
        grouped_greeter.SayHello(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


EXPECTED_FAILURE = {
    "java": (
        grpc.StatusCode.FAILED_PRECONDITION,
        "FAILED_PRECONDITION : greeter business failure for ada",
    ),
    "go": (grpc.StatusCode.FAILED_PRECONDITION, "greeter business failure for ada"),
    "python": (grpc.StatusCode.INTERNAL, "Invoke method failed: greeter business failure for ada"),
}


def test_business_error(greeter: Any, any_peer: RunningPeer, stubs: tuple[ModuleType, ...]) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        greeter.Fail(stubs[0].HelloRequest(name="ada"), metadata=metadata_for(any_peer), timeout=30)
    assert (caught.value.code(), caught.value.details()) == EXPECTED_FAILURE[any_peer.name]


def test_slow_answers_after_sleeping_and_honours_deadlines(
    greeter: Any, any_peer: RunningPeer, stubs: tuple[ModuleType, ...]
) -> None:
    metadata = metadata_for(any_peer)
    reply = greeter.Slow(stubs[0].SlowRequest(millis=200), metadata=metadata, timeout=30)
    assert reply.message == "slept 200ms"
    with pytest.raises(grpc.RpcError) as caught:
        greeter.Slow(stubs[0].SlowRequest(millis=3000), metadata=metadata, timeout=0.5)
    error = caught.value
    # dubbo-go races the client: its own handler deadline can fire first and it
    # then answers UNKNOWN "context deadline exceeded" instead of letting the
    # client's DEADLINE_EXCEEDED stand (seen about one run in ten).
    raced = (
        any_peer.name == "go"
        and error.code() == grpc.StatusCode.UNKNOWN
        and "deadline exceeded" in (error.details() or "")
    )
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED or raced, error


def test_server_stream_sends_three_replies(
    greeter: Any, any_peer: RunningPeer, stubs: tuple[ModuleType, ...]
) -> None:
    replies = list(
        greeter.SayHelloStream(
            stubs[0].HelloRequest(name="ada"), metadata=metadata_for(any_peer), timeout=30
        )
    )
    assert [reply.message for reply in replies] == [f"hello ada #{i}" for i in (1, 2, 3)]


# --- HTTP/JSON unary mode --------------------------------------------------------------------


def post_json(peer: RunningPeer, path: str, body: str, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=peer.triple_url, timeout=30) as client:
        return client.post(
            path, content=body, headers={"content-type": "application/json", **headers}
        )


H_G1 = dict(G1)
H_G2 = dict(G2)


@pytest.mark.parametrize(("headers", "expected"), [(H_G1, "go g1/1.0.0"), (H_G2, "go g2/2.0.0")])
def test_go_idl_over_http_json(go: RunningPeer, headers: dict[str, str], expected: str) -> None:
    response = post_json(go, f"/{GREETER}/SayHello", '{"name": "ada"}', headers)
    assert response.status_code == 200
    assert response.json() == {"message": "hello ada", "served_by": expected}


def test_go_business_error_over_http_json(go: RunningPeer) -> None:
    response = post_json(go, f"/{GREETER}/Fail", '{"name": "ada"}', H_G1)
    assert response.status_code == 412
    assert response.json() == {
        "code": "failed_precondition",
        "message": "greeter business failure for ada",
    }


def test_go_http_json_without_group_is_unimplemented(go: RunningPeer) -> None:
    response = post_json(go, f"/{GREETER}/SayHello", '{"name": "ada"}', {})
    assert response.status_code == 404
    assert response.json()["code"] == "unimplemented"


def test_java_idl_methods_are_not_mapped_over_http_json(java: RunningPeer) -> None:
    # Dubbo 3.3.6 maps no REST path for IDL methods whose proto name (SayHello) differs from the
    # Java method name (sayHello); see README. Pinned so a fix upstream is noticed.
    response = post_json(java, f"/{GREETER}/SayHello", '{"name": "ada"}', H_G1)
    assert response.status_code == 404
    assert response.json() == {"message": "Invoker not found", "status": "404"}


@pytest.mark.parametrize(
    ("method", "body", "headers", "expected"),
    [
        ("echo", '["hi"]', H_G1, "hi [java g1/1.0.0]"),
        ("echo", '"hi"', H_G2, "hi [java g2/2.0.0]"),
        ("add", "[1, 2]", H_G1, 3),
        ("add", '{"a": 1, "b": 2}', H_G1, 3),
        ("greet~S", '["ada"]', H_G1, "hello ada"),
        ("greet~Si", '["ada", 3]', H_G1, "hello ada x3"),
        ("slow", "[100]", H_G1, "slept 100ms"),
    ],
)
def test_java_pojo_over_http_json(
    java: RunningPeer, method: str, body: str, headers: dict[str, str], expected: object
) -> None:
    response = post_json(java, f"/{USER_SERVICE}/{method}", body, headers)
    assert response.status_code == 200, response.text
    assert response.json() == expected


def test_java_pojo_user_over_http_json(java: RunningPeer) -> None:
    response = post_json(java, f"/{USER_SERVICE}/getUser", "[7]", H_G2)
    assert response.status_code == 200
    assert response.json() == {
        "id": 7,
        "name": "user-7",
        "tags": ["g2", "user-7"],
        "attrs": {"peer": "java", "group": "g2", "version": "2.0.0"},
        "created": "2023-11-14 22:13:27",
    }
    user = '{"id": 5, "name": "x", "tags": ["a"], "attrs": {"k": "v"}, "created": 1700000000000}'
    created = post_json(java, f"/{USER_SERVICE}/createUser", f"[{user}]", H_G1).json()
    assert created["tags"] == ["a", "created"]
    assert created["attrs"] == {"k": "v", "served_by": "java g1/1.0.0"}


def test_java_pojo_overload_needs_a_signature(java: RunningPeer) -> None:
    response = post_json(java, f"/{USER_SERVICE}/greet", '["ada"]', H_G1)
    assert response.status_code == 500
    assert "Ambiguous mapping" in response.json()["message"]


def test_java_pojo_business_error_over_http_json(java: RunningPeer) -> None:
    response = post_json(java, f"/{USER_SERVICE}/fail", '["boom"]', H_G1)
    assert response.status_code == 500
    assert response.json() == {"message": "boom", "status": "500"}


# --- dubbo2 ports -----------------------------------------------------------------------------


def test_dubbo2_port_accepts_connections(grouped_peer: RunningPeer) -> None:
    assert grouped_peer.dubbo_port is not None
    with socket.create_connection(("127.0.0.1", grouped_peer.dubbo_port), timeout=5):
        pass
