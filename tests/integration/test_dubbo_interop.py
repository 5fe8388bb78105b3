"""meshgate in front of the real Dubbo peers (tests/peers/README.md), in all three modes.

* Triple HTTP/JSON (``protocol: triple`` cluster, ``dubbo:`` route): Java's POJO UserService,
  dubbo-go's IDL Greeter (the only services those servers expose over HTTP/1 JSON).
* dubbo2 generic invocation (``protocol: dubbo`` cluster, ``dubbo:`` route): UserService on
  Java and Go.
* Triple gRPC mode (``protocol: triple`` cluster, ``transcode:`` route over greeter.proto):
  the IDL Greeter on Java, Go and Python.

Every peer gets its own meshgate; each path prefix below is one route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.upstream.dubbo import DubboUpstream
from gateway.upstream.generic import GenericCall
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.peers import PROTO_DIR, RunningPeer, peer_or_skip
from tests.support.protos import compile_descriptor_set

pytestmark = pytest.mark.integration

USERS = "org.apache.dubbo.meshgate.UserService"
NO_SUCH_SERVICE = "org.apache.dubbo.meshgate.NoSuchService"
USER_CLASS = "org.apache.dubbo.meshgate.User"
GREETER = "meshgate.interop.v1.Greeter"
G1 = {"group": "g1", "version": "1.0.0"}
G2 = {"group": "g2", "version": "2.0.0"}
TO_G2 = {"x-dubbo-service-group": "g2", "x-dubbo-service-version": "2.0.0"}
TO_G9 = {"x-dubbo-service-group": "g9", "x-dubbo-service-version": "1.0.0"}  # no such group
TO_V9 = {"x-dubbo-service-group": "g1", "x-dubbo-service-version": "9.9.9"}  # no such version
FAST = "500ms"  # route timeout of the */fast routes, well under Slow's 2000 ms
USER_TYPES = {
    "echo": ["java.lang.String"],
    "add": ["int", "int"],
    "getUser": ["long"],
    "createUser": [USER_CLASS],
    "listUsers": ["java.util.List"],
    "fail": ["java.lang.String"],
    "slow": ["int"],
    # greet is overloaded on Java: its types come from the request header.
}


# --- meshgate config ------------------------------------------------------------------------


def _cluster(name: str, protocol: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "protocol": protocol,
        "endpoints": [{"address": f"127.0.0.1:{port}"}],
        **extra,
    }


def _generic_route(prefix: str, cluster: str, timeout: str = "10s", **dubbo: Any) -> dict[str, Any]:
    return {
        "name": prefix.strip("/"),
        "match": {"prefix": prefix, "methods": ["POST"]},
        "dubbo": dubbo,
        "cluster": cluster,
        "timeout": timeout,
    }


def _grpc_routes(cluster: str) -> list[dict[str, Any]]:
    transcode = {"services": [GREETER], "auto_mapping": True}
    prefix = f"/{GREETER}/"
    fast = {"prefix": prefix, "headers": [{"name": "x-fast", "present": True}]}
    return [
        {
            "name": "grpc-fast",
            "match": fast,
            "transcode": transcode,
            "cluster": cluster,
            "timeout": FAST,
        },
        {
            "name": "grpc",
            "match": {"prefix": prefix},
            "transcode": transcode,
            "cluster": cluster,
            "timeout": "10s",
        },
    ]


def gateway_config(peer: RunningPeer, descriptor_set: Path) -> dict[str, Any]:
    """Routes: /tri[-g2|-fast]/ (JSON mode), /dubbo[-g2|-fast]/ (dubbo2), /{Greeter}/ (gRPC)."""
    grouped = peer.name != "python"
    clusters = [_cluster("tri-g1", "triple", peer.triple_port, **(G1 if grouped else {}))]
    routes: list[dict[str, Any]] = []
    if grouped:
        clusters.append(_cluster("tri-g2", "triple", peer.triple_port, **G2))
        routes += [
            _generic_route("/tri/", "tri-g1"),
            _generic_route("/tri-g2/", "tri-g2"),
            _generic_route("/tri-fast/", "tri-g1", FAST),
        ]
    if peer.dubbo_port is not None:
        clusters += [
            _cluster("dubbo-g1", "dubbo", peer.dubbo_port, **G1),
            _cluster("dubbo-g2", "dubbo", peer.dubbo_port, **G2),
        ]
        routes += [
            _generic_route("/dubbo/", "dubbo-g1", parameter_types=USER_TYPES),
            _generic_route("/dubbo-g2/", "dubbo-g2", parameter_types=USER_TYPES),
            _generic_route("/dubbo-fast/", "dubbo-g1", FAST, parameter_types=USER_TYPES),
        ]
    routes += _grpc_routes("tri-g1")
    return {
        "descriptors": [{"file": str(descriptor_set)}],
        "listeners": [{"name": "public", "routes": routes}],
        "clusters": clusters,
    }


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("greeter") / "greeter.pb"
    return compile_descriptor_set("greeter.proto", out, root=PROTO_DIR)


def _gateway_for(
    name: str, descriptor_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningPeer, Any]]:
    with peer_or_skip(name) as peer:
        config = gateway_config(peer, descriptor_set)
        with (
            run_gateway(config, tmp_path_factory.mktemp(f"meshgate-{name}")) as gateway,
            httpx.Client(base_url=gateway.url, timeout=30.0) as client,
        ):
            yield peer, client


@pytest.fixture(scope="module")
def java(
    descriptor_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningPeer, Any]]:
    yield from _gateway_for("java", descriptor_set, tmp_path_factory)


@pytest.fixture(scope="module")
def go(
    descriptor_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningPeer, Any]]:
    yield from _gateway_for("go", descriptor_set, tmp_path_factory)


@pytest.fixture(scope="module")
def python(
    descriptor_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningPeer, Any]]:
    yield from _gateway_for("python", descriptor_set, tmp_path_factory)


@pytest.fixture(params=["java", "go"])
def dubbo_peer(request: pytest.FixtureRequest) -> tuple[str, httpx.Client]:
    """A peer serving UserService over dubbo2, and a client of its meshgate."""
    peer, client = request.getfixturevalue(request.param)
    return peer.name, client


@pytest.fixture(params=["java", "go", "python"])
def grpc_peer(request: pytest.FixtureRequest) -> tuple[str, httpx.Client]:
    peer, client = request.getfixturevalue(request.param)
    return peer.name, client


def post(
    client: httpx.Client, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.post(path, json=body, headers=headers or {})


def assert_error(response: httpx.Response, status: int, code: int, text: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert text in body["message"], body


def assert_not_found(response: httpx.Response, text: str = "") -> None:
    """404 NOT_FOUND, and the body is the gateway's JSON whatever the peer sent."""
    assert_error(response, 404, 5, text)
    assert response.headers["content-type"].startswith("application/json"), response.headers


# --- Triple HTTP/JSON mode: Java UserService ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        ("echo", ["hi"], "hi [java g1/1.0.0]"),  # an array of arguments
        ("echo", "hi", "hi [java g1/1.0.0]"),  # one bare value
        ("add", [1, 2], 3),  # two ints
        ("add", {"a": 40, "b": 2}, 42),  # an object by parameter name
    ],
)
def test_triple_json_java_argument_shapes(java: Any, method: str, body: Any, expected: Any) -> None:
    _, client = java
    response = post(client, f"/tri/{USERS}/{method}", body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected


def test_triple_json_java_pojos(java: Any) -> None:
    _, client = java
    user = post(client, f"/tri/{USERS}/getUser", [7]).json()
    assert user == {
        "id": 7,
        "name": "user-7",
        "tags": ["g1", "user-7"],
        "attrs": {"peer": "java", "group": "g1", "version": "1.0.0"},
        "created": "2023-11-14 22:13:27",
    }  # Java's own JSON date format
    created = post(
        client,
        f"/tri/{USERS}/createUser",
        [{"id": 5, "name": "ann", "tags": ["a"], "attrs": {"k": "v"}}],
    ).json()
    assert created["tags"] == ["a", "created"]
    assert created["attrs"] == {"k": "v", "served_by": "java g1/1.0.0"}
    users = post(client, f"/tri/{USERS}/listUsers", [[1, 2]]).json()
    assert [u["name"] for u in users] == ["user-1", "user-2"]


def test_triple_json_java_group_version(java: Any) -> None:
    _, client = java
    assert post(client, f"/tri-g2/{USERS}/echo", ["x"]).json() == "x [java g2/2.0.0]"
    by_header = post(client, f"/tri/{USERS}/echo", ["x"], TO_G2)
    assert by_header.json() == "x [java g2/2.0.0]"


def test_triple_json_java_overloads(java: Any) -> None:
    _, client = java
    types = "x-dubbo-service-method-overloading"
    one = post(client, f"/tri/{USERS}/greet", ["bo"], {types: "java.lang.String"})
    assert one.json() == "hello bo"
    two = post(client, f"/tri/{USERS}/greet", ["bo", 3], {types: "java.lang.String,int"})
    assert two.json() == "hello bo x3"
    # Without types Java cannot choose: its answer is carried through.
    assert_error(post(client, f"/tri/{USERS}/greet", ["bo"]), 500, 2, "Ambiguous mapping")


def test_triple_json_java_errors(java: Any) -> None:
    _, client = java
    assert_error(post(client, f"/tri/{USERS}/fail", ["boom"]), 500, 2, "boom")
    assert_error(post(client, f"/tri-fast/{USERS}/slow", [2000]), 504, 4)
    assert_error(post(client, f"/tri/{USERS}/nope", ["x"]), 404, 5, "Invoker not found")


def test_triple_json_java_unknown_service_and_method(java: Any) -> None:
    _, client = java
    # Java 3.3.6 answers 404 {"message":"Invoker not found","status":"404"} for both.
    assert_not_found(post(client, f"/tri/{NO_SUCH_SERVICE}/echo", ["x"]), "Invoker not found")
    assert_not_found(post(client, f"/tri/{USERS}/nope", ["x"]), "Invoker not found")
    # No 404 to translate for an unknown group or version: Java 3.3.6 serves the call from
    # another provider of the interface (observed), so meshgate can only pass that on.
    for headers in (TO_G9, TO_V9):
        assert post(client, f"/tri/{USERS}/echo", ["x"], headers).json() == "x [java g1/1.0.0]"


# --- Triple HTTP/JSON mode: dubbo-go Greeter ------------------------------------------------


def test_triple_json_go_greeter(go: Any) -> None:
    _, client = go
    reply = post(client, f"/tri/{GREETER}/SayHello", {"name": "ada"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"message": "hello ada", "served_by": "go g1/1.0.0"}
    g2 = post(client, f"/tri-g2/{GREETER}/SayHello", {"name": "ada"}).json()
    assert g2["served_by"] == "go g2/2.0.0"
    by_header = post(client, f"/tri/{GREETER}/SayHello", {"name": "ada"}, TO_G2).json()
    assert by_header["served_by"] == "go g2/2.0.0"
    slept = post(client, f"/tri/{GREETER}/Slow", {"millis": 10}).json()
    assert slept["message"] == "slept 10ms"


def test_triple_json_go_errors(go: Any) -> None:
    _, client = go
    # failed_precondition (9) -> HTTP 400 by gRPC's table (dubbo-go itself answered 412).
    assert_error(
        post(client, f"/tri/{GREETER}/Fail", {"name": "ada"}),
        400,
        9,
        "greeter business failure for ada",
    )
    assert_error(post(client, f"/tri-fast/{GREETER}/Slow", {"millis": 2000}), 504, 4)
    # A JSON array is not a HelloRequest: dubbo-go's invalid_argument.
    assert_error(post(client, f"/tri/{GREETER}/SayHello", ["ada"]), 400, 3)
    # An unknown method is not routed at all by dubbo-go's mux: a plain-text 404.
    assert_error(post(client, f"/tri/{GREETER}/Nope", {}), 404, 5, "404 page not found")


def test_triple_json_go_unknown_service_and_method(go: Any) -> None:
    _, client = go
    # dubbo-go's mux answers an unknown path with a plain-text 404; meshgate's answer is JSON.
    assert_not_found(post(client, f"/tri/{NO_SUCH_SERVICE}/SayHello", {}), "404 page not found")
    assert_not_found(post(client, f"/tri/{GREETER}/Nope", {}), "404 page not found")


def test_triple_json_go_unknown_group_version(go: Any) -> None:
    _, client = go
    for headers in (TO_G9, TO_V9):
        assert_not_found(
            post(client, f"/tri/{GREETER}/SayHello", {"name": "ada"}, headers),
            "no implementation found",
        )


# --- dubbo2 generic invocation: Java and Go UserService -------------------------------------


@pytest.mark.parametrize(
    ("method", "body", "expected"),
    [
        ("echo", ["hi"], "hi [{peer} g1/1.0.0]"),
        ("echo", "hi", "hi [{peer} g1/1.0.0]"),
        ("add", [1, 2], 3),
    ],
)
def test_dubbo_argument_shapes(
    dubbo_peer: tuple[str, httpx.Client], method: str, body: Any, expected: Any
) -> None:
    name, client = dubbo_peer
    response = post(client, f"/dubbo/{USERS}/{method}", body)
    assert response.status_code == 200, response.text
    want = expected.format(peer=name) if isinstance(expected, str) else expected
    assert response.json() == want


def test_dubbo_pojos(dubbo_peer: tuple[str, httpx.Client]) -> None:
    name, client = dubbo_peer
    user = post(client, f"/dubbo/{USERS}/getUser", [7]).json()
    # Generic results keep the POJO's class; dates are ISO-8601 UTC.
    assert user["class"] == USER_CLASS
    assert user["name"] == "user-7"
    assert user["tags"] == ["g1", "user-7"]
    assert user["attrs"] == {"peer": name, "group": "g1", "version": "1.0.0"}
    assert user["created"] == "2023-11-14T22:13:27.000Z"
    # dubbo-go's generic result names the Go field ID "iD" (it ignores the hessian tag).
    assert user.get("id", user.get("iD")) == 7
    argument = {"class": USER_CLASS, "id": 5, "name": "ann", "tags": ["a"], "attrs": {"k": "v"}}
    created = post(client, f"/dubbo/{USERS}/createUser", [argument]).json()
    assert created["name"] == "ann"
    assert created["tags"] == ["a", "created"]
    assert created["attrs"] == {"k": "v", "served_by": f"{name} g1/1.0.0"}
    assert created["created"] == "2023-11-14T22:13:20.000Z"
    users = post(client, f"/dubbo/{USERS}/listUsers", [[1, 2]]).json()
    assert [u["name"] for u in users] == ["user-1", "user-2"]


def test_dubbo_group_version(dubbo_peer: tuple[str, httpx.Client]) -> None:
    name, client = dubbo_peer
    assert post(client, f"/dubbo-g2/{USERS}/echo", ["x"]).json() == f"x [{name} g2/2.0.0]"
    by_header = post(client, f"/dubbo/{USERS}/echo", ["x"], TO_G2)
    assert by_header.json() == f"x [{name} g2/2.0.0]"
    unknown = {"x-dubbo-service-group": "g9", "x-dubbo-service-version": "1.0.0"}
    assert_error(post(client, f"/dubbo/{USERS}/echo", ["x"], unknown), 404, 5)


def test_dubbo_unknown_service_and_method(dubbo_peer: tuple[str, httpx.Client]) -> None:
    """Unknown interface, group, version or method: 404 NOT_FOUND with a JSON body.

    Java 3.3.6 says it three ways: status 40 "Fail to decode request due to: RpcInvocation
    [methodName=$invoke, parameterTypes=null]" (no exported interface:version), status 70
    "Not found exported service" (an unknown group) and status 70 "No such method". dubbo-go
    answers an exception: "don't have this exporter" or "method is not found".
    """
    name, client = dubbo_peer
    assert_not_found(post(client, f"/dubbo/{NO_SUCH_SERVICE}/echo", ["x"]))
    assert_not_found(post(client, f"/dubbo/{USERS}/echo", ["x"], TO_G9))
    assert_not_found(post(client, f"/dubbo/{USERS}/echo", ["x"], TO_V9))
    types = {"x-dubbo-service-method-overloading": "java.lang.String"}
    assert_not_found(post(client, f"/dubbo/{USERS}/nope", ["x"], types))
    if name == "java":
        unknown_interface = post(client, f"/dubbo/{NO_SUCH_SERVICE}/echo", ["x"])
        assert "parameterTypes=null" in unknown_interface.json()["message"]
    # The connection survives all of the above.
    assert post(client, f"/dubbo/{USERS}/echo", ["x"]).json() == f"x [{name} g1/1.0.0]"


def test_dubbo_overloads(dubbo_peer: tuple[str, httpx.Client]) -> None:
    name, client = dubbo_peer
    types = "x-dubbo-service-method-overloading"
    one = post(client, f"/dubbo/{USERS}/greet", ["bo"], {types: "java.lang.String"})
    assert one.json() == "hello bo"
    two = post(client, f"/dubbo/{USERS}/greet", ["bo", 3], {types: "java.lang.String,int"})
    if name == "java":
        assert two.json() == "hello bo x3"
    else:  # Go has no overloading: greet(String, int) does not exist there.
        assert_error(two, 500, 2, "not matched")
    # Neither the header nor the route names greet's types: the client is told how.
    assert_error(
        post(client, f"/dubbo/{USERS}/greet", ["bo"]), 400, 3, "x-dubbo-service-method-overloading"
    )


def test_dubbo_errors(dubbo_peer: tuple[str, httpx.Client]) -> None:
    name, client = dubbo_peer
    failed = post(client, f"/dubbo/{USERS}/fail", ["boom"])
    assert_error(failed, 500, 2, "boom")
    if name == "java":
        assert failed.json()["message"] == "org.apache.dubbo.meshgate.UserServiceException: boom"
        assert failed.json()["details"] == [
            {"@type": "dubbo.exception", "class": "org.apache.dubbo.meshgate.UserServiceException"}
        ]
    assert_error(post(client, f"/dubbo-fast/{USERS}/slow", [2000]), 504, 4)
    types = {"x-dubbo-service-method-overloading": "java.lang.String"}
    assert_error(post(client, f"/dubbo/{USERS}/nope", ["x"], types), 404, 5)
    assert_error(post(client, f"/dubbo/{USERS}/add", [1]), 400, 3, "takes 2 arguments")
    # An argument the provider cannot convert to its parameter type: Java's GenericFilter
    # ("RpcException: java.lang.NumberFormatException", status 70) and dubbo-go
    # ("realization of arg[0] failed") both blame the argument: 400, like gRPC and Triple.
    bad = post(client, f"/dubbo/{USERS}/add", ["abc", "def"])
    assert_error(bad, 400, 3, "NumberFormatException" if name == "java" else "realization of arg")
    # The connection survives all of the above.
    assert post(client, f"/dubbo/{USERS}/add", [2, 2]).json() == 4


# --- Triple gRPC mode through transcoding: Java, Go, Python Greeter --------------------------


def _served_by(name: str, group_version: str) -> str:
    return "python" if name == "python" else f"{name} {group_version}"


def test_grpc_mode_say_hello(grpc_peer: tuple[str, httpx.Client]) -> None:
    name, client = grpc_peer
    reply = post(client, f"/{GREETER}/SayHello", {"name": "ada"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"message": "hello ada", "servedBy": _served_by(name, "g1/1.0.0")}
    if name != "python":
        g2 = post(client, f"/{GREETER}/SayHello", {"name": "ada"}, TO_G2).json()
        assert g2["servedBy"] == f"{name} g2/2.0.0"


def test_grpc_mode_fail_and_slow(grpc_peer: tuple[str, httpx.Client]) -> None:
    name, client = grpc_peer
    failed = post(client, f"/{GREETER}/Fail", {"name": "ada"})
    if name == "python":  # the SDK answers INTERNAL for every handler exception
        assert_error(failed, 500, 13, "greeter business failure for ada")
    else:
        assert_error(failed, 400, 9, "greeter business failure for ada")
    slept = post(client, f"/{GREETER}/Slow", {"millis": 10})
    assert slept.json()["message"] == "slept 10ms"
    slow = post(client, f"/{GREETER}/Slow", {"millis": 2000}, {"x-fast": "1"})
    # dubbo-go gets the same deadline (grpc-timeout, tri-service-timeout) and, when
    # its timer fires first, answers UNKNOWN "context deadline exceeded"; meshgate
    # reports that as the timeout it is.
    assert_error(slow, 504, 4)


# --- the dubbo2 connection itself -----------------------------------------------------------


def test_dubbo_connection_heartbeats_and_reopen(java: Any) -> None:
    """Idle heartbeats are answered by Java; a closed pooled connection is reopened."""
    peer, _ = java
    address = f"127.0.0.1:{peer.dubbo_port}"
    call = GenericCall(
        USERS,
        "echo",
        b'["hb"]',
        parameter_types=["java.lang.String"],
        timeout=10.0,
        group="g1",
        version="1.0.0",
    )

    async def scenario() -> None:
        upstream = DubboUpstream(heartbeat=0.2)
        try:
            assert (await upstream.call(address, call)).body == b'"hb [java g1/1.0.0]"'
            (connection,) = upstream.connections()
            await asyncio.sleep(1.5)  # idle: pings go out, Java's pongs keep it alive
            assert connection.heartbeats_sent >= 2
            assert connection.heartbeats_answered >= 2
            assert connection.usable
            await connection.close()
            assert (await upstream.call(address, call)).body == b'"hb [java g1/1.0.0]"'
            assert upstream.connections()[0] is not connection
        finally:
            await upstream.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_unreachable_endpoints_are_503(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    config = {
        "listeners": [
            {
                "name": "public",
                "routes": [
                    _generic_route("/dubbo/", "dubbo", parameter_types=USER_TYPES),
                    _generic_route("/tri/", "tri"),
                ],
            }
        ],
        "clusters": [_cluster("dubbo", "dubbo", port), _cluster("tri", "triple", port)],
    }
    gateway: RunningGateway
    with run_gateway(config, tmp_path) as gateway, gateway.client() as client:
        assert_error(post(client, f"/dubbo/{USERS}/echo", ["x"]), 503, 14)
        assert_error(post(client, f"/tri/{USERS}/echo", ["x"]), 503, 14)
