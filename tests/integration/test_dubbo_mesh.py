"""Dubbo services resolved through the mesh core: ``dubbo:`` and ``transcode:``
routes whose cluster is ``xds:///HOST:PORT``, against the real Java and Go peers.

The tests' ADS server publishes one Istio-shaped service per peer port (the
Triple port and the dubbo2 port); the route names the protocol, since xDS does
not. Before the single cluster model such a route failed every request (500).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_dubbo_interop import GREETER, USER_TYPES, USERS
from tests.support import xds_builders as b
from tests.support.gateway import run_gateway
from tests.support.peers import PROTO_DIR, RunningPeer, peer_or_skip
from tests.support.protos import compile_descriptor_set
from tests.support.xds_server import CLUSTER, ENDPOINTS, LISTENER, ROUTE, XdsServer

pytestmark = pytest.mark.integration

G1 = {"x-dubbo-service-group": "g1", "x-dubbo-service-version": "1.0.0"}


def services(peer: RunningPeer) -> dict[str, b.Service]:
    found = {
        "tri": b.Service(
            f"users-tri.{peer.name}.svc.cluster.local",
            50052,
            {"": [("127.0.0.1", peer.triple_port)]},
        )
    }
    if peer.dubbo_port is not None:
        found["dubbo"] = b.Service(
            f"users-dubbo.{peer.name}.svc.cluster.local",
            20880,
            {"": [("127.0.0.1", peer.dubbo_port)]},
        )
    return found


def routes(service: b.Service) -> list[Any]:
    return [
        b.route(
            name="abort",
            headers=[b.header("x-fault", exact="abort")],
            cluster=service.cluster(""),
            fault=b.abort(8),
        ),
        b.route(name="default", cluster=service.cluster("")),
    ]


def gateway_config(
    found: dict[str, b.Service], bootstrap: Path, descriptor_set: Path
) -> dict[str, Any]:
    tri = f"xds:///{found['tri'].target}"
    route_list: list[dict[str, Any]] = [
        {
            "match": {"prefix": "/tri/"},
            "dubbo": {"group": "g1", "version": "1.0.0"},
            "cluster": tri,
        },
        {
            "match": {"prefix": f"/{GREETER}/"},
            "protocol": "triple",
            "transcode": {"services": [GREETER], "auto_mapping": True},
            "cluster": tri,
        },
    ]
    if "dubbo" in found:
        route_list.append(
            {
                "match": {"prefix": "/dubbo/"},
                "protocol": "dubbo",
                "dubbo": {"group": "g1", "version": "1.0.0", "parameter_types": USER_TYPES},
                "cluster": f"xds:///{found['dubbo'].target}",
                "retry": {"attempts": 2, "on": ["unavailable"]},
            }
        )
    return {
        "descriptors": [{"file": str(descriptor_set)}],
        "listeners": [{"name": "public", "routes": route_list}],
        "mesh": {"xds": {"bootstrap": str(bootstrap)}},
    }


@pytest.fixture(scope="module", params=["java", "go"])
def through_mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, httpx.Client]]:
    name: str = request.param
    tmp = tmp_path_factory.mktemp(f"dubbo-mesh-{name}")
    descriptor_set = compile_descriptor_set("greeter.proto", tmp / "greeter.pb", root=PROTO_DIR)
    with peer_or_skip(name) as peer, XdsServer() as xds:
        found = services(peer)
        # Every service's resources together: each set() replaces a whole type.
        xds.set(LISTENER, [s.listener() for s in found.values()])
        xds.set(ROUTE, [s.route_config(*routes(s)) for s in found.values()])
        xds.set(CLUSTER, [c for s in found.values() for c in s.clusters()])
        xds.set(ENDPOINTS, [e for s in found.values() for e in s.endpoints()])
        bootstrap = tmp / "bootstrap.json"
        bootstrap.write_text(json.dumps(xds.bootstrap()))
        config = gateway_config(found, bootstrap, descriptor_set)
        with (
            run_gateway(config, tmp) as gateway,
            httpx.Client(base_url=gateway.url, timeout=30.0) as client,
        ):
            yield name, client


def test_triple_json_through_the_mesh(through_mesh: tuple[str, httpx.Client]) -> None:
    name, client = through_mesh
    if name == "go":
        pytest.skip("dubbo-go's Triple JSON mode takes protobuf messages only (README, Dubbo)")
    response = client.post(f"/tri/{USERS}/echo", json=["x"])
    assert response.status_code == 200, response.text
    assert response.json() == "x [java g1/1.0.0]"


def test_dubbo2_through_the_mesh(through_mesh: tuple[str, httpx.Client]) -> None:
    name, client = through_mesh
    response = client.post(f"/dubbo/{USERS}/echo", json=["x"])
    assert response.status_code == 200, response.text
    assert response.json() == f"x [{name} g1/1.0.0]"
    user = client.post(f"/dubbo/{USERS}/getUser", json=[7]).json()
    assert user["name"] == "user-7"


def test_triple_grpc_mode_through_the_mesh(through_mesh: tuple[str, httpx.Client]) -> None:
    name, client = through_mesh
    reply = client.post(f"/{GREETER}/SayHello", json={"name": "ada"}, headers=G1)
    assert reply.status_code == 200, reply.text
    assert reply.json()["servedBy"] == f"{name} g1/1.0.0"


def test_mesh_faults_apply_to_dubbo_routes(through_mesh: tuple[str, httpx.Client]) -> None:
    _, client = through_mesh
    aborted = client.post(f"/dubbo/{USERS}/echo", json=["x"], headers={"x-fault": "abort"})
    assert aborted.status_code == 429
    assert aborted.json()["message"] == "fault injected by the mesh"
