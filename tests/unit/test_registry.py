"""Dubbo registries without a registry: provider URLs, ZooKeeper payloads,
registry clusters, exposures, and the request path over them (in process)."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from gateway.config import ConfigError, ExposeConfig, RegistryConfig, load_config_text
from gateway.errors import UpstreamUnavailable
from gateway.exposure import Exposure, render_path
from gateway.registry import layout
from gateway.registry.providers import (
    DEFAULT_WEIGHT,
    Provider,
    Selection,
    parse_provider_url,
    with_types,
)
from gateway.registry.watchers import Registries
from gateway.upstream.call import Call, Reply
from gateway.upstream.registry_cluster import RegistryCluster, RegistryClusterRef
from mesh.hashing import RequestAttributes
from tests.support.in_process import InProcessGateway

USERS = "org.apache.dubbo.meshgate.UserService"
JAVA_URL = (
    f"tri://127.0.0.1:50051/{USERS}?application=java-app&group=g1&interface={USERS}"
    "&methods=add,echo,greet&prefer.serialization=hessian2,fastjson2&side=provider"
    "&timeout=3000&version=1.0.0&weight=30"
)
GO_URL = (
    f"dubbo://127.0.0.1:20880/{USERS}?application=go-app&group=g1&interface={USERS}"
    "&methods=Add,add,Echo,echo&serialization=hessian2&version=1.0.0&weight=0"
)


# --- provider URLs ---------------------------------------------------------------------------


def test_a_java_provider_url_as_zookeeper_stores_it() -> None:
    provider = parse_provider_url(quote(JAVA_URL, safe=""))
    assert provider == Provider(
        protocol="tri",
        host="127.0.0.1",
        port=50051,
        interface=USERS,
        group="g1",
        version="1.0.0",
        application="java-app",
        methods=("add", "echo", "greet"),
        weight=30,
        timeout_ms=3000,
        serialization="hessian2,fastjson2",
    )
    assert provider.address == "127.0.0.1:50051"


def test_a_dubbo_go_provider_url_lists_methods_once_and_weight_zero_means_unset() -> None:
    provider = parse_provider_url(GO_URL)
    assert provider is not None
    assert provider.methods == ("add", "echo")
    assert provider.weight == DEFAULT_WEIGHT
    assert provider.serialization == "hessian2"


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        f"dubbo://127.0.0.1/{USERS}",  # no port
        f"consumer://127.0.0.1:1/{USERS}?side=consumer",
        f"dubbo://127.0.0.1:20880/{USERS}?enabled=false",
        "dubbo://127.0.0.1:20880/",  # no interface
    ],
)
def test_what_is_not_a_usable_provider_url(url: str) -> None:
    assert parse_provider_url(url) is None


def test_selection_by_group_version_application_and_patterns() -> None:
    provider = parse_provider_url(JAVA_URL)
    assert provider is not None
    assert Selection(USERS, "g1", "1.0.0").matches(provider)
    assert not Selection(USERS, "g2").matches(provider)
    assert not Selection(USERS, version="2.0.0").matches(provider)
    assert not Selection(application="go-app").matches(provider)
    assert Selection(include=("org.apache.*",)).matches(provider)
    assert not Selection(include=("org.apache.*",), exclude=("*UserService",)).matches(provider)


# --- ZooKeeper payloads (shapes as the Java and Go peers write them) --------------------------

JAVA_INSTANCE = {
    "name": "java-app",
    "id": "127.0.0.1:20880",
    "address": "127.0.0.1",
    "port": 20880,
    "payload": {
        "@class": "org.apache.dubbo.registry.zookeeper.ZookeeperInstance",
        "metadata": {
            "dubbo.endpoints": json.dumps(
                [{"port": 20880, "protocol": "dubbo"}, {"port": 50051, "protocol": "tri"}]
            ),
            "dubbo.metadata.revision": "8e77a61d",
            "dubbo.metadata.storage-type": "remote",
        },
    },
}
METADATA = {
    "app": "java-app",
    "revision": "8e77a61d",
    "services": {
        f"g1/{USERS}:1.0.0:tri": {
            "name": USERS,
            "group": "g1",
            "version": "1.0.0",
            "protocol": "tri",
            "params": {"methods": "add,echo", "weight": "7"},
        },
        f"g1/{USERS}:1.0.0:dubbo": {
            "name": USERS,
            "group": "g1",
            "version": "1.0.0",
            "protocol": "dubbo",
            "port": 20880,
            "params": {"methods": "add,echo"},
        },
    },
}


def test_an_instance_and_its_revision_become_providers_per_protocol() -> None:
    instance = layout.parse_instance(json.dumps(JAVA_INSTANCE).encode())
    assert instance is not None
    assert (instance.application, instance.revision) == ("java-app", "8e77a61d")
    services = layout.parse_metadata(json.dumps(METADATA).encode())
    providers = {p.protocol: p for p in layout.instance_providers(instance, services)}
    # The Triple port comes from dubbo.endpoints, not the instance's own port.
    assert providers["tri"].address == "127.0.0.1:50051"
    assert providers["tri"].weight == 7
    assert providers["dubbo"].address == "127.0.0.1:20880"
    assert providers["dubbo"].application == "java-app"
    assert providers["dubbo"].methods == ("add", "echo")


@pytest.mark.parametrize("data", [b"", b"{}", b"[1]", b'{"name": "x"}'])
def test_broken_instance_nodes_are_skipped(data: bytes) -> None:
    assert layout.parse_instance(data) is None


def test_service_definition_types_for_methods_with_one_signature() -> None:
    definition = {
        "canonicalName": USERS,
        "methods": [
            {"name": "add", "parameterTypes": ["int", "int"], "returnType": "int"},
            {"name": "greet", "parameterTypes": ["java.lang.String"]},
            {"name": "greet", "parameterTypes": ["java.lang.String", "int"]},
        ],
    }
    signatures = layout.parse_definition(json.dumps(definition).encode())
    provider = parse_provider_url(JAVA_URL)
    assert provider is not None
    typed = with_types(provider, signatures)
    assert typed.parameter_types == {"add": ("int", "int")}  # greet is overloaded
    assert layout.definition_path("dubbo", provider) == (
        f"/dubbo/metadata/{USERS}/1.0.0/g1/provider/java-app"
    )


def test_mapping_and_paths() -> None:
    assert layout.parse_mapping(b"go-app, java-app,") == ("go-app", "java-app")
    assert layout.providers_path("dubbo", USERS) == f"/dubbo/{USERS}/providers"
    assert layout.revision_paths("dubbo", "app", "r1") == (
        "/dubbo/metadata/app/r1",
        "/dubbo/app/r1",
    )


# --- registry clusters -------------------------------------------------------------------------


def _provider(protocol: str, port: int, weight: int = 100, group: str = "g1") -> Provider:
    return Provider(protocol, "127.0.0.1", port, USERS, group, "1.0.0", "app", ("echo",), weight)


def _select(cluster: RegistryCluster, encoding: str = "json") -> tuple[str, str | None]:
    ref = RegistryClusterRef(cluster, "json" if encoding == "json" else "proto")
    plan = ref.select(Call(USERS, "echo", [b"[]"]), {}, RequestAttributes(None, b""), None)
    return plan.first.address, plan.upstream


def test_a_registry_cluster_takes_its_first_preferred_protocol_with_providers() -> None:
    cluster = RegistryCluster("users", Selection(USERS, "g1"), ("tri", "dubbo"))
    with pytest.raises(UpstreamUnavailable, match="no provider"):
        _select(cluster)
    cluster.update([_provider("dubbo", 20880), _provider("tri", 50052, group="g2")])
    assert _select(cluster) == ("127.0.0.1:20880", "dubbo2")  # g2 is not selected
    cluster.update([_provider("dubbo", 20880), _provider("tri", 50051)])
    assert _select(cluster) == ("127.0.0.1:50051", "triple-json")
    # A transcode (protobuf) route only goes over Triple.
    assert _select(cluster, "proto") == ("127.0.0.1:50051", "triple")
    cluster.update([])
    with pytest.raises(UpstreamUnavailable):
        _select(cluster)


def test_a_registry_cluster_honours_provider_weights() -> None:
    cluster = RegistryCluster("users", Selection(USERS), ("dubbo",), rng=random.Random(3))
    cluster.update([_provider("dubbo", 1, weight=100), _provider("dubbo", 2, weight=300)])
    picks = Counter(_select(cluster)[0] for _ in range(400))
    assert picks == {"127.0.0.1:1": 100, "127.0.0.1:2": 300}
    assert {e.address: e.weight for e in cluster.endpoints} == {
        "127.0.0.1:1": 100,
        "127.0.0.1:2": 300,
    }


def test_a_registry_cluster_gives_published_parameter_types() -> None:
    cluster = RegistryCluster("users", Selection(USERS), ("dubbo",))
    typed = with_types(_provider("dubbo", 1), {"echo": [["java.lang.String"]]})
    cluster.update([typed])
    assert cluster.parameter_types(USERS, "echo") == ("java.lang.String",)
    assert cluster.parameter_types(USERS, "other") is None


# --- exposures ---------------------------------------------------------------------------------


def test_render_path_drops_empty_segments() -> None:
    provider = Provider("dubbo", "127.0.0.1", 1, USERS, application="app")
    template = "/{application}/{interface}/{group}/{version}/{method}"
    assert render_path(template, provider, "echo") == f"/app/{USERS}/echo"


def _exposure(**extra: object) -> Exposure:
    config = ExposeConfig.model_validate({"registry": {"address": "127.0.0.1:2181"}, **extra})
    return Exposure(config, "public")


def test_exposed_routes_come_and_go_with_providers() -> None:
    exposure = _exposure(include=["org.apache.*"], exclude=["*.Internal"])
    internal = Provider("dubbo", "127.0.0.1", 2, "org.apache.Internal", "", "", "app", ("x",))
    exposure.update([_provider("dubbo", 1), internal])
    assert set(exposure.routes) == {f"/app/{USERS}/1.0.0/echo"}
    route = exposure.find(f"/app/{USERS}/1.0.0/echo")
    assert route is not None
    plan = route.cluster.select(Call(USERS, "echo", []), {}, RequestAttributes(None, b""), None)
    assert (plan.first.address, plan.upstream) == ("127.0.0.1:1", "dubbo2")
    assert route.cluster.name == f"expose:app:{USERS}:g1:1.0.0"
    (described,) = exposure.describe()
    assert (described["interface"], described["method"], described["group"]) == (
        USERS,
        "echo",
        "g1",
    )
    exposure.update([])
    assert exposure.find(f"/app/{USERS}/1.0.0/echo") is None
    assert exposure.describe() == []


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        ("registry: {address: 127.0.0.1:2181}", "needs the interface"),
        (
            "registry: {address: 127.0.0.1:2181, interface: x}\n"
            '    endpoints: [{address: "127.0.0.1:1"}]',
            "takes no endpoints",
        ),
        ("registry: {address: nowhere, interface: x}", "expected host:port"),
        ("registry: {address: 127.0.0.1:2181, interface: x, protocols: []}", "at least one"),
        ("registry: {kind: nacos, address: 127.0.0.1:8848, interface: x}", "nacos is not"),
    ],
)
def test_registry_cluster_config_errors(cluster: str, message: str) -> None:
    listener = "listeners:\n  - {name: public, address: 127.0.0.1:18080}\n"
    text = f"{listener}clusters:\n  - name: users\n    {cluster}\n"
    with pytest.raises(ConfigError, match=message):
        load_config_text(text, Path())


# --- the request path (in process, providers fed by hand) --------------------------------------

REGISTRY_CONFIG = f"""
listeners:
  - name: public
    address: 127.0.0.1:18080
    routes:
      - match: {{prefix: /users/}}
        dubbo: {{}}
        cluster: users
        retry: {{attempts: 1, on: [unavailable]}}
    expose:
      - registry: {{address: 127.0.0.1:2181}}
        include: ["org.apache.*"]
clusters:
  - name: users
    registry: {{address: 127.0.0.1:2181, interface: {USERS}, group: g1, protocols: [dubbo]}}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_registry_routes_in_process() -> None:
    seen: list[str] = []

    async def handler(address: str, call: Call, timeout: float | None) -> Reply:
        seen.append(address)
        if address.endswith(":1"):
            raise UpstreamUnavailable("provider 1 down")
        return Reply(json.dumps(list(call.dubbo.parameter_types or [])).encode())

    gateway = InProcessGateway(REGISTRY_CONFIG, handler)
    cluster = gateway.snapshot.clusters["users"]
    assert isinstance(cluster, RegistryCluster)
    typed = [with_types(_provider("dubbo", p), {"echo": [["java.lang.String"]]}) for p in (1, 2)]
    cluster.update(typed)
    (exposure,) = gateway.snapshot.listeners[0].exposures
    exposure.update([_provider("tri", 3)])
    async with gateway.client() as client:
        response = await client.post(f"/users/{USERS}/echo", content=b'["hi"]')
        assert response.status_code == 200
        assert response.json() == ["java.lang.String"]  # types from the provider metadata
        assert set(seen) <= {"127.0.0.1:1", "127.0.0.1:2"} and seen[-1] == "127.0.0.1:2"
        response = await client.post(f"/app/{USERS}/1.0.0/echo", content=b'["hi"]')
        assert response.status_code == 200 and seen[-1] == "127.0.0.1:3"
        assert gateway.made[-1] == "triple-json"
        exposure.update([])
        response = await client.post(f"/app/{USERS}/1.0.0/echo", content=b'["hi"]')
        assert response.status_code == 404
        cluster.update([])
        response = await client.post(f"/users/{USERS}/echo", content=b'["hi"]')
        assert response.status_code == 503
        # The reason ("no provider ... in the registry") goes to the log, not the body.
        assert response.json()["code"] == 14


# --- a worker's registries (a fake registry client in place of kazoo) --------------------------


class FakeRegistry:
    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self.providers: tuple[Provider, ...] = ()
        self.first_read = threading.Event()
        self.wanted: list[str | None] = []
        self.started = False
        self.stopped = False

    def discover(self, interface_level: bool, application_level: bool) -> None:
        self.levels = (interface_level, application_level)

    def want_interface(self, interface: str) -> None:
        self.wanted.append(interface)

    def want_all(self) -> None:
        self.wanted.append(None)

    def start(self) -> threading.Event:
        self.started = True
        self.first_read.set()
        connected = threading.Event()
        connected.set()
        return connected

    def stop(self) -> None:
        self.stopped = True

    def status(self) -> dict[str, object]:
        return {"connected": True}

    def change(self, providers: tuple[Provider, ...]) -> None:
        """As kazoo does: from another thread."""
        self.providers = providers
        thread = threading.Thread(target=self.on_change)
        thread.start()
        thread.join()


@pytest.mark.anyio
async def test_registries_share_a_client_and_feed_subscribers_on_the_loop() -> None:
    made: list[FakeRegistry] = []

    def factory(config: RegistryConfig, on_change: Callable[[], None]) -> FakeRegistry:
        made.append(FakeRegistry(on_change))
        return made[-1]

    registries = Registries(factory)
    config = RegistryConfig(address="127.0.0.1:2181", discovery="application")
    got: list[tuple[str, int]] = []
    registries.subscribe(config, lambda p: got.append(("cluster", len(p))), USERS)
    registries.subscribe(config, lambda p: got.append(("expose", len(p))), None)
    (fake,) = made  # one client per registry
    assert fake.wanted == [USERS, None] and fake.levels == (False, True)
    assert got == [("cluster", 0), ("expose", 0)]
    await registries.start()
    assert fake.started
    got.clear()
    fake.change((_provider("dubbo", 1),))
    await asyncio.sleep(0.01)  # the change was handed to this loop
    assert got == [("cluster", 1), ("expose", 1)]
    registries.replace_subscribers()  # a new snapshot
    fake.change(())
    await asyncio.sleep(0.01)
    assert got == [("cluster", 1), ("expose", 1)]
    registries.stop()
    assert fake.stopped
