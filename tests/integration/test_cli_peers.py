"""``meshgate call`` through the mesh core and to the Java and Go Dubbo peers.

xds:/// targets resolve through the tests' own ADS server exactly as the
gateway's routes do (the canary route sends ``x-canary: true`` to v2); the
Dubbo peers answer Triple with the greeter IDL, Triple JSON without one, and
dubbo2 with hessian2, each with its group and version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import xds_builders as b
from tests.support.cli import meshgate
from tests.support.net import free_port
from tests.support.peers import GREETER_PROTO, RunningPeer, peer_or_skip
from tests.support.processes import echo_backend
from tests.support.xds_server import XdsServer, serve_service

pytestmark = pytest.mark.integration

HOST, PORT = "shop.default.svc.cluster.local", 50051
ECHO = "meshgate.test.v1.EchoService/Echo"
GREETER = "meshgate.interop.v1.Greeter"
USERS = "org.apache.dubbo.meshgate.UserService"


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    ports = {name: free_port() for name in ("v1", "v2")}
    shop = b.Service(
        HOST, PORT, {"v1": [("127.0.0.1", ports["v1"])], "v2": [("127.0.0.1", ports["v2"])]}
    )
    with (
        echo_backend(ports["v1"], "v1"),
        echo_backend(ports["v2"], "v2"),
        XdsServer() as server,
    ):
        canary = b.header("x-canary", exact="true")
        serve_service(
            server,
            shop,
            b.route(name="canary", headers=[canary], cluster=shop.cluster("v2")),
            b.route(name="default", cluster=shop.cluster("v1")),
        )
        path = tmp_path_factory.mktemp("cli-mesh") / "bootstrap.json"
        path.write_text(json.dumps(server.bootstrap()))
        yield path


def test_call_through_the_mesh_core(bootstrap: Path, echo_set: Path) -> None:
    target = f"xds:///{HOST}:{PORT}"
    plain = meshgate("call", "--bootstrap", str(bootstrap), target, ECHO, '{"message": "m"}')
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["servedBy"] == "v1"
    canary = meshgate(
        "call", "--bootstrap", str(bootstrap), "--descriptor-set", str(echo_set),
        "-H", "x-canary: true", target, ECHO, "{}",
    )  # fmt: skip
    assert canary.returncode == 0, canary.stderr
    assert json.loads(canary.stdout)["servedBy"] == "v2"


def test_an_unknown_mesh_target_is_unavailable(bootstrap: Path, echo_set: Path) -> None:
    result = meshgate(
        "call", "--timeout", "3", "--bootstrap", str(bootstrap), "--descriptor-set", str(echo_set),
        "xds:///nowhere.default.svc.cluster.local:1", ECHO, "{}",
    )  # fmt: skip
    assert result.returncode == 14, result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module", params=["java", "go"])
def peer(request: pytest.FixtureRequest) -> Iterator[RunningPeer]:
    with peer_or_skip(request.param) as running:
        yield running


def test_triple_with_the_idl_picks_group_and_version(peer: RunningPeer) -> None:
    target = f"tri://{peer.triple_address}?group=g2&version=2.0.0"
    result = meshgate(
        "call", "--proto", str(GREETER_PROTO), target, f"{GREETER}/SayHello", '{"name": "cli"}'
    )
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["message"] == "hello cli"
    assert reply["servedBy"] == f"{peer.name} g2/2.0.0"
    flags = meshgate(
        "call", "--proto", str(GREETER_PROTO), "--group", "g1", "--version", "1.0.0",
        f"tri://{peer.triple_address}", f"{GREETER}/SayHello", '{"name": "cli"}',
    )  # fmt: skip
    assert json.loads(flags.stdout)["servedBy"] == f"{peer.name} g1/1.0.0"


def test_triple_server_stream_is_ndjson(peer: RunningPeer) -> None:
    target = f"tri://{peer.triple_address}?group=g1&version=1.0.0"
    result = meshgate(
        "call", "--proto", str(GREETER_PROTO), target, f"{GREETER}/SayHelloStream", '{"name": "s"}'
    )
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line)["message"] for line in result.stdout.splitlines()]
    assert messages == ["hello s #1", "hello s #2", "hello s #3"]


def test_a_business_failure_exits_with_its_status(peer: RunningPeer) -> None:
    target = f"tri://{peer.triple_address}?group=g1&version=1.0.0"
    result = meshgate(
        "call", "--proto", str(GREETER_PROTO), target, f"{GREETER}/Fail", '{"name": "x"}'
    )
    assert result.returncode not in (0, 2), result.stderr
    assert "greeter business failure for x" in result.stderr


def test_dubbo2_with_java_parameter_types(peer: RunningPeer) -> None:
    assert peer.dubbo_port is not None
    target = f"dubbo://127.0.0.1:{peer.dubbo_port}?group=g1&version=1.0.0"
    user = meshgate("call", target, f"{USERS}/getUser", "[7]", "--types", "long")
    assert user.returncode == 0, user.stderr
    reply = json.loads(user.stdout)
    # dubbo-go's generic result names the Go field ID "iD" (test_dubbo_interop says so too).
    assert reply.get("id", reply.get("iD")) == 7
    assert reply["name"] == "user-7"
    assert reply["attrs"]["peer"] == peer.name
    echo = meshgate("call", target, f"{USERS}/echo", '["hi"]', "--types", "java.lang.String")
    assert json.loads(echo.stdout) == f"hi [{peer.name} g1/1.0.0]"


def test_list_through_the_mesh_core(bootstrap: Path) -> None:
    """Reflection on the endpoint the mesh core picks for the target."""
    result = meshgate("list", "--bootstrap", str(bootstrap), f"xds:///{HOST}:{PORT}")
    assert result.returncode == 0, result.stderr
    assert "meshgate.test.v1.EchoService" in result.stdout
    assert "POST /meshgate.test.v1.EchoService/Echo" in result.stdout
