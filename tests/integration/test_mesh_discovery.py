"""Interface discovery: wildcard LDS, then server reflection on one endpoint per target."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import xds_builders as b
from tests.support.net import free_port
from tests.support.processes import echo_backend
from tests.support.xds_mesh import mesh_core
from tests.support.xds_server import CLUSTER, ENDPOINTS, LISTENER, ROUTE, XdsServer

pytestmark = pytest.mark.integration


def test_services_map_to_the_targets_serving_them() -> None:
    port, dead_port = free_port(), free_port()
    shop = b.Service("shop.default.svc.cluster.local", 50051, {"": [("127.0.0.1", port)]})
    # A second service whose only endpoint is down: discovery skips it.
    cart = b.Service("cart.default.svc.cluster.local", 8080, {"": [("127.0.0.1", dead_port)]})
    with echo_backend(port, "shop"), XdsServer() as xds:
        xds.set(LISTENER, [shop.listener(), cart.listener()])
        xds.set(
            ROUTE,
            [
                shop.route_config(b.route(cluster=shop.cluster(""))),
                cart.route_config(b.route(cluster=cart.cluster(""))),
            ],
        )
        xds.set(CLUSTER, shop.clusters() + cart.clusters())
        xds.set(ENDPOINTS, shop.endpoints() + cart.endpoints())

        async def scenario() -> dict[str, str]:
            async with mesh_core(xds) as core:
                found = await core.discover_interfaces(timeout=5)
                assert set(core.targets) == {shop.target, cart.target}
                return found

        found = asyncio.run(scenario())
        wildcard = xds.wait_for(lambda r: r.type_url == LISTENER, 1)
    assert wildcard.names == ()  # legacy wildcard: no names
    assert found == {"meshgate.test.v1.EchoService": shop.target}
