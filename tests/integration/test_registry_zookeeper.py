"""Dubbo providers found in a real ZooKeeper, registered by the real Java and Go peers.

The peers register with their own registry modules (Dubbo's curator5 ZooKeeper
registry, dubbo-go's zookeeper registry), interface-level or application-level
(tests/peers/README.md, "Registries"); meshgate reads the registry through
kazoo, calls the providers over dubbo2 and Triple, follows them as they come
and go, keeps serving through a ZooKeeper restart, and exposes every
registered interface as HTTP routes.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.gateway import RunningGateway, run_gateway
from tests.support.peers import PeerToolchainMissing, RegistryOptions, go_peer, java_peer
from tests.support.toolchain import missing
from tests.support.zookeeper import ZookeeperServer

pytestmark = pytest.mark.integration

USERS = "org.apache.dubbo.meshgate.UserService"
STRING = {"x-dubbo-service-method-overloading": "java.lang.String"}
WAIT = 60.0  # bound on every wait for the registry to show a change
SESSION_EXPIRY_PAUSE = 8.0  # well past a 2 s session timeout
T = TypeVar("T")


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZookeeperServer]:
    try:
        server = ZookeeperServer(tmp_path_factory.mktemp("zookeeper"))
    except PeerToolchainMissing as error:
        missing(f"zookeeper: {error}")
        raise AssertionError("unreachable") from error
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _registry(zookeeper: ZookeeperServer, **selection: Any) -> dict[str, Any]:
    return {"kind": "zookeeper", "address": zookeeper.address, **selection}


def _route(prefix: str, cluster: str) -> dict[str, Any]:
    return {"match": {"prefix": prefix}, "dubbo": {}, "cluster": cluster, "timeout": "10s"}


def _eventually(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """Poll until ``probe`` returns something (bounded)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            found = probe()
        except (httpx.HTTPError, AssertionError) as error:
            found, last = None, error
        if found is not None:
            return found
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def _call(client: httpx.Client, path: str, body: Any, **headers: str) -> httpx.Response:
    return client.post(path, json=body, headers=headers)


def _answer(client: httpx.Client, path: str, body: Any, expect: str, **headers: str) -> str:
    def probe() -> str | None:
        response = _call(client, path, body, **headers)
        text = response.text
        return text if response.status_code == 200 and expect in text else None

    return _eventually(probe, f"{path} answering {expect!r}")


def _endpoints(gateway: RunningGateway, cluster: str) -> set[str]:
    clusters = httpx.get(f"{gateway.admin_url}/clusters", timeout=5).json()
    return {e["address"] for e in clusters["registry"].get(cluster, {}).get("endpoints", [])}


def _registries(gateway: RunningGateway) -> list[dict[str, Any]]:
    return list(httpx.get(f"{gateway.admin_url}/clusters", timeout=5).json()["registries"])


def _java(zookeeper: ZookeeperServer, mode: str) -> Any:
    try:
        return java_peer(RegistryOptions(zookeeper.url, mode))
    except PeerToolchainMissing as error:
        missing(f"java peer: {error}")


def test_interface_level_java_over_dubbo2_and_triple(
    zookeeper: ZookeeperServer, tmp_path: Path
) -> None:
    registry = {"interface": USERS, "discovery": "interface"}
    config = {
        "clusters": [
            {
                "name": "users-dubbo",
                "registry": _registry(
                    zookeeper, **registry, group="g1", version="1.0.0", protocols=["dubbo"]
                ),
            },
            {
                "name": "users-tri",
                "registry": _registry(
                    zookeeper, **registry, group="g2", version="2.0.0", protocols=["tri"]
                ),
            },
        ],
        "listeners": [
            {
                "name": "public",
                "routes": [_route("/dubbo/", "users-dubbo"), _route("/tri/", "users-tri")],
            }
        ],
    }
    with _java(zookeeper, "interface") as java, run_gateway(config, tmp_path) as gateway:
        with gateway.client() as client:
            # dubbo2 generic invocation needs parameter types: the provider's
            # published service definition gives them, no header needed.
            assert _answer(client, f"/dubbo/{USERS}/echo", ["hi"], "java g1") == (
                '"hi [java g1/1.0.0]"'
            )
            assert _call(client, f"/dubbo/{USERS}/add", [2, 3]).json() == 5
            assert _answer(client, f"/tri/{USERS}/echo", ["hi"], "java g2") == (
                '"hi [java g2/2.0.0]"'
            )
        assert _endpoints(gateway, "users-dubbo") == {f"127.0.0.1:{java.dubbo_port}"}
        assert _endpoints(gateway, "users-tri") == {f"127.0.0.1:{java.triple_port}"}
        routes = httpx.get(f"{gateway.admin_url}/routes", timeout=5).json()
        assert [r["cluster"] for r in routes["public"]["routes"]] == ["users-dubbo", "users-tri"]
    # The provider is gone: its ephemeral nodes go with its session.
    with run_gateway(config, tmp_path) as gateway, gateway.client() as client:
        response = _call(client, f"/dubbo/{USERS}/echo", ["hi"])
        assert response.status_code == 503, response.text
        assert response.json()["message"] == "upstream unavailable"  # the reason is logged
        assert gateway.logged("no provider")


def test_application_level_go_providers_come_and_go_and_zookeeper_restarts(
    zookeeper: ZookeeperServer, tmp_path: Path
) -> None:
    cluster = {
        "name": "users",
        "registry": _registry(
            zookeeper,
            interface=USERS,
            group="g1",
            version="1.0.0",
            discovery="application",
            protocols=["dubbo"],
        ),
    }
    config = {
        "clusters": [cluster],
        "listeners": [{"name": "public", "routes": [_route("/", "users")]}],
    }
    options = RegistryOptions(zookeeper.url, "instance")
    try:
        first = go_peer(options)
        peer_a = first.__enter__()
    except PeerToolchainMissing as error:
        missing(f"go peer: {error}")
        raise AssertionError("unreachable") from error
    try:
        with run_gateway(config, tmp_path) as gateway, gateway.client() as client:
            a = f"127.0.0.1:{peer_a.dubbo_port}"
            assert "go g1/1.0.0" in _answer(client, f"/{USERS}/echo", ["hi"], "go g1", **STRING)
            assert _endpoints(gateway, "users") == {a}
            with go_peer(options) as peer_b:
                b = f"127.0.0.1:{peer_b.dubbo_port}"
                _eventually(lambda: _endpoints(gateway, "users") == {a, b} or None, "B joins")
                first.__exit__(None, None, None)
                _eventually(lambda: _endpoints(gateway, "users") == {b} or None, "A leaves")
                for _ in range(5):
                    response = _call(client, f"/{USERS}/echo", ["hi"], **STRING)
                    assert response.status_code == 200, response.text

                # A registry outage: the last known providers keep serving, and say so.
                zookeeper.stop()
                _eventually(lambda: not _registries(gateway)[0]["connected"] or None, "outage seen")
                assert _endpoints(gateway, "users") == {b}
                response = _call(client, f"/{USERS}/echo", ["hi"], **STRING)
                assert response.status_code == 200, response.text
                zookeeper.start()
                _eventually(lambda: _registries(gateway)[0]["connected"] or None, "reconnected")
                assert "go g1/1.0.0" in _answer(client, f"/{USERS}/echo", ["hi"], "go", **STRING)
                assert _endpoints(gateway, "users") == {b}
    finally:
        first.__exit__(None, None, None)


def test_expose_every_interface_of_java_and_go(zookeeper: ZookeeperServer, tmp_path: Path) -> None:
    config = {
        "listeners": [
            {
                "name": "public",
                "routes": [],
                "expose": [
                    {
                        "registry": _registry(zookeeper, protocols=["dubbo"]),
                        "include": ["org.apache.dubbo.meshgate.*"],
                        "path": "/{application}/{interface}/{version}/{method}",
                    },
                    {
                        # The same providers over Triple (Java only: Go serves
                        # UserService over dubbo2 alone).
                        "registry": _registry(zookeeper, protocols=["tri"]),
                        "include": [USERS],
                        "path": "/tri/{application}/{interface}/{version}/{method}",
                    },
                ],
            }
        ],
    }
    java_path = f"/meshgate-java-peer/{USERS}/1.0.0"
    go_path = f"/meshgate-go-peer/{USERS}/1.0.0"
    with (
        _java(zookeeper, "instance"),
        go_peer(RegistryOptions(zookeeper.url, "interface")),
        run_gateway(config, tmp_path) as gateway,
        gateway.client() as client,
    ):
        # Java publishes its service definition: the types come from there.
        assert _answer(client, f"{java_path}/echo", ["hi"], "java") == '"hi [java g1/1.0.0]"'
        assert _call(client, f"{java_path}/add", [2, 3]).json() == 5
        user = _call(client, f"{java_path}/getUser", [7]).json()
        assert user["name"] == "user-7"
        assert _answer(client, f"/tri{java_path}/echo", ["hi"], "java") == ('"hi [java g1/1.0.0]"')
        assert _call(client, f"/tri/meshgate-java-peer/{USERS}/2.0.0/add", [2, 3]).json() == 5
        # Go publishes none: the caller names the types.
        assert "go g1/1.0.0" in _answer(client, f"{go_path}/echo", ["hi"], "go", **STRING)
        # Only the listed interfaces: the Greeter is not exposed.
        assert (
            _call(
                client, "/meshgate-java-peer/meshgate.interop.v1.Greeter/1.0.0/sayHello", []
            ).status_code
            == 404
        )
        assert client.get(f"{java_path}/echo").status_code == 405
        routes = httpx.get(f"{gateway.admin_url}/routes", timeout=5).json()
        paths = {r["path"] for r in routes["public"]["exposed"][0]}
        assert {
            f"{java_path}/echo",
            f"{go_path}/echo",
            f"/meshgate-java-peer/{USERS}/2.0.0/add",
        } <= paths


def test_session_expiry_reads_everything_again(zookeeper: ZookeeperServer, tmp_path: Path) -> None:
    """meshgate frozen past its session timeout: ZooKeeper expires the session; once running
    again meshgate opens a new session, reads the providers anew and keeps serving."""
    cluster = {
        "name": "users",
        "registry": _registry(
            zookeeper,
            interface=USERS,
            group="g1",
            version="1.0.0",
            discovery="interface",
            protocols=["dubbo"],
            session_timeout="2s",
        ),
    }
    config = {
        "clusters": [cluster],
        "listeners": [{"name": "public", "routes": [_route("/", "users")]}],
    }
    with (
        _java(zookeeper, "interface") as java,
        run_gateway(config, tmp_path) as gateway,
        gateway.client() as client,
    ):
        _answer(client, f"/{USERS}/echo", ["hi"], "java g1")
        assert _registries(gateway)[0]["sessions_lost"] == 0
        group = gateway.process.proc.pid  # meshgate runs in its own session
        os.killpg(group, signal.SIGSTOP)
        try:
            time.sleep(SESSION_EXPIRY_PAUSE)
        finally:
            os.killpg(group, signal.SIGCONT)
        _eventually(
            lambda: _registries(gateway)[0]["sessions_lost"] >= 1 or None, "session expired"
        )
        _eventually(lambda: _registries(gateway)[0]["connected"] or None, "new session")
        assert _answer(client, f"/{USERS}/echo", ["hi"], "java g1") == '"hi [java g1/1.0.0]"'
        assert _endpoints(gateway, "users") == {f"127.0.0.1:{java.dubbo_port}"}


def test_an_instance_changed_in_place_is_read_again(
    zookeeper: ZookeeperServer, tmp_path: Path
) -> None:
    """A provider publishing a new revision rewrites its instance node in place (no child
    added or removed). Here the test plays that provider's part on the real node: it writes a
    revision whose metadata adds UserService 3.0.0, and meshgate's 3.0.0 cluster fills."""
    from kazoo.client import KazooClient

    registry = _registry(
        zookeeper, interface=USERS, version="3.0.0", discovery="application", protocols=["dubbo"]
    )
    config = {
        "clusters": [{"name": "users-v3", "registry": registry}],
        "listeners": [{"name": "public", "routes": [_route("/", "users-v3")]}],
    }
    zk = KazooClient(hosts=zookeeper.address)
    zk.start(timeout=15)
    try:
        with (
            go_peer(RegistryOptions(zookeeper.url, "instance", "meshgate-go-v3")) as go,
            run_gateway(config, tmp_path) as gateway,
        ):
            address = f"127.0.0.1:{go.dubbo_port}"
            node = f"/services/meshgate-go-v3/{address}"
            _eventually(lambda: zk.exists(node), "the instance registered")
            assert _endpoints(gateway, "users-v3") == set()
            instance = json.loads(zk.get(node)[0])
            metadata = instance["payload"]["metadata"]
            service = {
                "name": USERS,
                "group": "g3",
                "version": "3.0.0",
                "protocol": "dubbo",
                "port": go.dubbo_port,
                "params": {"methods": "echo"},
            }
            revision = "meshgate-test-revision"
            zk.create(
                f"/dubbo/meshgate-go-v3/{revision}",
                json.dumps(
                    {
                        "app": "meshgate-go-v3",
                        "revision": revision,
                        "services": {f"g3/{USERS}:3.0.0:dubbo": service},
                    }
                ).encode(),
                makepath=True,
            )
            metadata["dubbo.metadata.revision"] = revision
            zk.set(node, json.dumps(instance).encode())
            _eventually(
                lambda: _endpoints(gateway, "users-v3") == {address} or None, "3.0.0 appears"
            )
    finally:
        zk.stop()
        zk.close()
