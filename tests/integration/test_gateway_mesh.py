"""meshgate routing ``xds:///`` clusters through its mesh core, end to end.

The tests' own ADS server serves Istio-shaped resources; meshgate runs as a
process with a GRPC_XDS_BOOTSTRAP pointing at it; real backends answer.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import xds_builders as b
from tests.support.gateway import RunningGateway, run_gateway
from tests.support.net import free_port
from tests.support.processes import echo_backend
from tests.support.xds_server import ROUTE, XdsServer, serve_service

pytestmark = pytest.mark.integration

HOST, PORT = "shop.default.svc.cluster.local", 50051
TARGET = f"{HOST}:{PORT}"
ECHO = "/meshgate.test.v1.EchoService/Echo"


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, int]]:
    ports = {name: free_port() for name in ("v1", "v2")}
    with echo_backend(ports["v1"], "v1"), echo_backend(ports["v2"], "v2"):
        yield ports


@pytest.fixture(scope="module")
def shop(backends: dict[str, int]) -> b.Service:
    return b.Service(
        HOST, PORT, {"v1": [("127.0.0.1", backends["v1"])], "v2": [("127.0.0.1", backends["v2"])]}
    )


@pytest.fixture(scope="module")
def xds(shop: b.Service) -> Iterator[XdsServer]:
    with XdsServer() as server:
        serve_service(server, shop, *default_routes(shop))
        yield server


def default_routes(shop: b.Service) -> list[Any]:
    return [
        b.route(
            name="canary", headers=[b.header("x-canary", exact="true")], cluster=shop.cluster("v2")
        ),
        b.route(
            name="abort",
            headers=[b.header("x-fault", exact="abort")],
            cluster=shop.cluster("v1"),
            fault=b.abort(8),
        ),
        b.route(
            name="slow",
            headers=[b.header("x-slow", present=True)],
            cluster=shop.cluster("v1"),
            timeout=0.5,
        ),
        b.route(name="split", weights={shop.cluster("v1"): 80, shop.cluster("v2"): 20}),
    ]


@pytest.fixture(scope="module")
def gateway(
    xds: XdsServer, echo_set: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("mesh")
    bootstrap = tmp / "bootstrap.json"
    bootstrap.write_text(json.dumps(xds.bootstrap()))
    config = {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True},
                        "cluster": f"xds:///{TARGET}",
                        "timeout": "5s",
                    }
                ],
            }
        ],
        "mesh": {"xds": {"bootstrap": str(bootstrap)}},
    }
    with run_gateway(config, tmp) as running:
        yield running


def served(client: httpx.Client, count: int, **headers: str) -> Counter[str]:
    names: Counter[str] = Counter()
    for _ in range(count):
        response = client.post(ECHO, json={}, headers=headers)
        assert response.status_code == 200, response.text
        names[response.json()["servedBy"]] += 1
    return names


def test_weighted_split_follows_the_control_plane(gateway: RunningGateway) -> None:
    n = 400
    with gateway.client() as client:
        names = served(client, n)
    # 80/20 with n=400: the v2 share's standard deviation is 2 %; allow 4 sigma.
    assert abs(names["v2"] / n - 0.20) < 0.08, names


def test_header_match_goes_to_the_subset(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        assert served(client, 20, **{"x-canary": "true"}) == Counter({"v2": 20})


def test_fault_abort_maps_to_http(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        response = client.post(ECHO, json={}, headers={"x-fault": "abort"})
    assert response.status_code == 429
    assert response.json()["code"] == 8


def test_route_timeout_from_the_control_plane(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        slow = client.post(ECHO, json={"delaySeconds": 2}, headers={"x-slow": "1"})
        fast = client.post(ECHO, json={"delaySeconds": 0.1}, headers={"x-slow": "1"})
    assert slow.status_code == 504
    assert fast.status_code == 200


def test_admin_shows_xds_resources_and_endpoints(gateway: RunningGateway) -> None:
    dump = httpx.get(f"{gateway.admin_url}/config_dump").json()["xds"]
    kinds = {(r["type"], r["state"]) for r in dump["resources"]}
    assert {k for k, _ in kinds} == {"lds", "rds", "cds", "eds"}, dump
    assert all(state == "acked" for _, state in kinds), kinds
    clusters = httpx.get(f"{gateway.admin_url}/clusters").json()["xds"]
    assert any("v2" in name for name in clusters), clusters


def test_weight_change_is_followed(
    gateway: RunningGateway, xds: XdsServer, shop: b.Service
) -> None:
    xds.set(
        ROUTE,
        [
            shop.route_config(
                b.route(name="all-v2", weights={shop.cluster("v1"): 0, shop.cluster("v2"): 100})
            )
        ],
    )
    try:
        with gateway.client() as client:
            deadline = time.monotonic() + 10
            while served(client, 10) != Counter({"v2": 10}):
                assert time.monotonic() < deadline, "the new weights never took effect"
                time.sleep(0.2)
    finally:
        xds.set(ROUTE, [shop.route_config(*default_routes(shop))])


def test_invalid_resource_is_nacked_and_old_config_keeps_serving(
    gateway: RunningGateway, xds: XdsServer, shop: b.Service
) -> None:
    xds.set(
        ROUTE,
        [shop.route_config(b.route(name="bad", regex="/(?<=x)broken", cluster=shop.cluster("v2")))],
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            dump = httpx.get(f"{gateway.admin_url}/config_dump").json()["xds"]
            nacked = [r for r in dump["resources"] if r["state"] == "nacked"]
            if nacked or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert nacked, dump
        assert "regex" in json.dumps(nacked).lower()
        with gateway.client() as client:
            # Still the previous (good) config: header routing works.
            assert served(client, 5, **{"x-canary": "true"}) == Counter({"v2": 5})
    finally:
        xds.set(ROUTE, [shop.route_config(*default_routes(shop))])


def test_control_plane_outage_keeps_serving(gateway: RunningGateway, xds: XdsServer) -> None:
    xds.stop()
    try:
        with gateway.client() as client:
            assert sum(served(client, 10).values()) == 10
    finally:
        xds.restart()


def test_interfaces_are_discovered_with_no_per_service_config(
    xds: XdsServer, echo_set: Path, tmp_path: Path
) -> None:
    bootstrap = tmp_path / "bootstrap.json"
    bootstrap.write_text(json.dumps(xds.bootstrap()))
    config = {
        "descriptors": [{"file": str(echo_set)}],
        "listeners": [
            {
                "name": "public",
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "transcode": {"auto_mapping": True},
                        "cluster": "xds:///*",
                    }
                ],
            }
        ],
        "mesh": {"xds": {"bootstrap": str(bootstrap)}, "discover_interfaces": True},
    }
    with run_gateway(config, tmp_path) as gw, gw.client() as client:
        response = client.post(ECHO, json={}, headers={"x-canary": "true"})
        assert response.status_code == 200, response.text
        assert response.json()["servedBy"] == "v2"
        interfaces = httpx.get(f"{gw.admin_url}/config_dump").json()["interfaces"]
        assert interfaces == {"meshgate.test.v1.EchoService": TARGET}
        unknown = client.post("/nope.v1.Nope/Call", json={})
        assert unknown.status_code == 404


def wait_for_route(gateway: RunningGateway, name: str, retry_on: str | None) -> None:
    """Until the gateway's RDS resource carries route ``name`` with that retry_on."""
    deadline = time.monotonic() + 10
    while True:
        dump = httpx.get(f"{gateway.admin_url}/config_dump").json()["xds"]
        for resource in dump["resources"]:
            if resource["type"] != "rds" or "resource" not in resource:
                continue
            for host in resource["resource"].get("virtualHosts", []):
                for route in host.get("routes", []):
                    policy = route.get("route", {}).get("retryPolicy", {}).get("retryOn")
                    if route.get("name") == name and policy == retry_on:
                        return
        assert time.monotonic() < deadline, f"route {name} never arrived"
        time.sleep(0.1)


def test_retry_policy_from_the_control_plane(
    gateway: RunningGateway, xds: XdsServer, backends: dict[str, int]
) -> None:
    """A subset with one dead endpoint: with the route's retry policy every request
    lands on the live one; without it, some fail with 503."""
    dead = free_port()
    flaky = b.Service(HOST, PORT, {"v1": [("127.0.0.1", dead), ("127.0.0.1", backends["v1"])]})
    from tests.support.xds_server import CLUSTER, ENDPOINTS

    xds.set(CLUSTER, flaky.clusters())
    xds.set(ENDPOINTS, flaky.endpoints())
    try:
        for retry_on, expect_failures in (("unavailable", False), (None, True)):
            xds.set(
                ROUTE,
                [
                    flaky.route_config(
                        b.route(
                            name="flaky",
                            cluster=flaky.cluster("v1"),
                            retry_on=retry_on,
                            num_retries=2 if retry_on else None,
                        )
                    )
                ],
            )
            wait_for_route(gateway, "flaky", retry_on)
            with gateway.client() as client:
                statuses = Counter(client.post(ECHO, json={}).status_code for _ in range(20))
            if expect_failures:
                assert statuses[503] > 0, statuses
            else:
                assert statuses == Counter({200: 20}), statuses
    finally:
        shop = b.Service(
            HOST,
            PORT,
            {"v1": [("127.0.0.1", backends["v1"])], "v2": [("127.0.0.1", backends["v2"])]},
        )
        xds.set(CLUSTER, shop.clusters())
        xds.set(ENDPOINTS, shop.endpoints())
        xds.set(ROUTE, [shop.route_config(*default_routes(shop))])
