"""MeshCore against the tests' ADS server and real Echo backends on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from mesh.errors import TargetNotReady
from tests.support import xds_builders as b
from tests.support.net import free_port
from tests.support.processes import echo_backend
from tests.support.xds_mesh import echo, eventually, mesh_core
from tests.support.xds_server import CLUSTER, ENDPOINTS, LISTENER, ROUTE, XdsServer, serve_service

pytestmark = pytest.mark.integration

HOST, PORT = "shop.default.svc.cluster.local", 50051
ECHO = b.ECHO_METHOD


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, int]]:
    ports = {name: free_port() for name in ("v1-a", "v1-b", "v2")}
    with (
        echo_backend(ports["v1-a"], "v1-a"),
        echo_backend(ports["v1-b"], "v1-b"),
        echo_backend(ports["v2"], "v2"),
    ):
        yield ports


@pytest.fixture
def shop(backends: dict[str, int]) -> b.Service:
    return b.Service(
        HOST,
        PORT,
        {
            "v1": [("127.0.0.1", backends["v1-a"]), ("127.0.0.1", backends["v1-b"])],
            "v2": [("127.0.0.1", backends["v2"])],
        },
    )


@pytest.fixture
def xds() -> Iterator[XdsServer]:
    with XdsServer() as server:
        yield server


async def served(core, target: str, count: int, headers=None) -> Counter[str]:  # type: ignore[no-untyped-def]
    names: Counter[str] = Counter()
    for _ in range(count):
        decision = core.route(target, ECHO, headers or {})
        assert decision is not None and decision.address is not None, decision
        names[await echo(decision.address)] += 1
    return names


def test_resolves_target_to_the_subset_backends(xds: XdsServer, shop: b.Service) -> None:
    serve_service(xds, shop, b.route(cluster=shop.cluster("v1")))

    async def scenario() -> None:
        async with mesh_core(xds) as core:
            core.watch(shop.target)
            view = await core.wait_ready(shop.target, 10)
            assert view.error is None
            assert await served(core, shop.target, 6) == Counter({"v1-a": 3, "v1-b": 3})
            dump = core.config_dump()
            states = {(r["type"], r["state"]) for r in dump["resources"]}
            assert states == {
                ("lds", "acked"),
                ("rds", "acked"),
                ("cds", "acked"),
                ("eds", "acked"),
            }
            clusters = core.clusters_dump()
            assert [e["health"] for e in clusters[shop.cluster("v1")]["endpoints"]] == [
                "healthy",
                "healthy",
            ]

    asyncio.run(scenario())


def test_weight_change_pushed_moves_the_split(xds: XdsServer, shop: b.Service) -> None:
    v1, v2 = shop.cluster("v1"), shop.cluster("v2")
    serve_service(xds, shop, b.route(weights={v1: 100}))

    async def scenario() -> None:
        async with mesh_core(xds) as core:
            core.watch(shop.target)
            await core.wait_ready(shop.target, 10)
            assert (await served(core, shop.target, 4)).keys() <= {"v1-a", "v1-b"}
            xds.set(ROUTE, [shop.route_config(b.route(weights={v1: 20, v2: 80}))])
            await eventually(
                lambda: core.config_dump()["acks"]["rds"]["version"] == xds.version(ROUTE)
            )
            picks = Counter(core.route(shop.target, ECHO).cluster for _ in range(2000))  # type: ignore[union-attr]
            # Binomial(2000, 0.8): sd ~ 17.9; allow 5 sd.
            assert abs(picks[v2] - 1600) < 90
            calls = await served(core, shop.target, 20)
            assert calls["v2"] > 8

    asyncio.run(scenario())


def test_header_match_route_selects_the_subset(xds: XdsServer, shop: b.Service) -> None:
    serve_service(
        xds,
        shop,
        b.route(
            name="canary", headers=[b.header("x-version", exact="v2")], cluster=shop.cluster("v2")
        ),
        b.route(name="default", cluster=shop.cluster("v1")),
    )

    async def scenario() -> None:
        async with mesh_core(xds) as core:
            core.watch(shop.target)
            await core.wait_ready(shop.target, 10)
            assert await served(core, shop.target, 3, {"x-version": "v2"}) == Counter({"v2": 3})
            assert "v2" not in await served(core, shop.target, 4, {"x-version": "v1"})

    asyncio.run(scenario())


def test_invalid_regex_is_nacked_and_old_config_keeps_serving(
    xds: XdsServer, shop: b.Service, caplog: pytest.LogCaptureFixture
) -> None:
    serve_service(xds, shop, b.route(cluster=shop.cluster("v2")))

    async def scenario() -> None:
        async with mesh_core(xds) as core:
            core.watch(shop.target)
            await core.wait_ready(shop.target, 10)
            good_version = xds.version(ROUTE)
            xds.set(
                ROUTE,
                [shop.route_config(b.route(regex="/(?=lookahead).*", cluster=shop.cluster("v1")))],
            )
            nack = await asyncio.to_thread(
                xds.wait_for, lambda r: r.type_url == ROUTE and r.error is not None, 10
            )
            assert nack.version == good_version
            assert "RE2" in (nack.error or "") and shop.target in (nack.error or "")
            [rds] = [r for r in core.config_dump()["resources"] if r["type"] == "rds"]
            assert rds["state"] == "nacked" and "RE2" in rds["error"]
            assert rds["version"] == good_version
            assert rds["rejected_version"] == xds.version(ROUTE)
            assert await served(core, shop.target, 3) == Counter({"v2": 3})

    asyncio.run(scenario())
    # The NACK is logged once, as a warning with the reason.
    nacks = [r for r in caplog.records if "xDS NACK" in r.getMessage()]
    assert len(nacks) == 1, [r.getMessage() for r in nacks]
    assert nacks[0].levelno == logging.WARNING and nacks[0].name == "meshgate.mesh.xds.stream"
    assert "RE2" in nacks[0].getMessage()


def test_a_lost_control_plane_is_a_warning(
    xds: XdsServer, shop: b.Service, caplog: pytest.LogCaptureFixture
) -> None:
    serve_service(xds, shop, b.route(cluster=shop.cluster("v2")))

    async def scenario() -> None:
        async with mesh_core(xds) as core:
            core.watch(shop.target)
            await core.wait_ready(shop.target, 10)
            xds.drop_streams()
            await eventually(lambda: any("ADS stream" in r.getMessage() for r in caplog.records))
            assert await served(core, shop.target, 2) == Counter({"v2": 2})

    asyncio.run(scenario())
    [lost, *_] = [r for r in caplog.records if "ADS stream" in r.getMessage()]
    assert lost.levelno == logging.WARNING and xds.address in lost.getMessage()


def test_removed_resources_fail_requests(xds: XdsServer, shop: b.Service) -> None:
    serve_service(
        xds,
        shop,
        b.route(prefix="/meshgate.test.v1.EchoService/Ping", cluster=shop.cluster("v2")),
        b.route(cluster=shop.cluster("v1")),
    )

    async def scenario() -> None:
        async with mesh_core(xds) as core:
            core.watch(shop.target)
            await core.wait_ready(shop.target, 10)
            xds.remove(CLUSTER, shop.cluster("v2"))
            ping = "/meshgate.test.v1.EchoService/Ping"
            await eventually(lambda: core.route(shop.target, ping).error is not None)  # type: ignore[union-attr]
            decision = core.route(shop.target, ping)
            assert decision is not None and "not found" in (decision.error or "")
            assert core.route(shop.target, ECHO).error is None  # type: ignore[union-attr]
            xds.remove(LISTENER, shop.target)
            await eventually(lambda: core.view(shop.target).error is not None)  # type: ignore[union-attr]
            assert "does not exist" in core.route(shop.target, ECHO).error  # type: ignore[union-attr, operator]

    asyncio.run(scenario())


def test_unknown_target_does_not_exist_after_the_timer(xds: XdsServer, shop: b.Service) -> None:
    serve_service(xds, shop, b.route(cluster=shop.cluster("v1")))

    async def scenario() -> None:
        async with mesh_core(xds, does_not_exist_timeout_s=0.5) as core:
            core.watch("nope.default.svc.cluster.local:1")
            with pytest.raises(TargetNotReady):
                await core.wait_ready("nope.default.svc.cluster.local:1", 0.2)
            view = await core.wait_ready("nope.default.svc.cluster.local:1", 5)
            assert view.error is not None and "does not exist" in view.error

    asyncio.run(scenario())


def test_control_plane_killed_and_restarted(xds: XdsServer, shop: b.Service) -> None:
    v1, v2 = shop.cluster("v1"), shop.cluster("v2")
    serve_service(xds, shop, b.route(cluster=v1))

    async def scenario() -> None:
        async with mesh_core(xds) as core:
            core.watch(shop.target)
            await core.wait_ready(shop.target, 10)
            await asyncio.to_thread(xds.stop)
            await eventually(lambda: not core.ads.connected)
            # Last good config keeps serving while the control plane is away.
            assert (await served(core, shop.target, 4)).keys() <= {"v1-a", "v1-b"}
            await asyncio.sleep(1.0)  # a few failed reconnects
            xds.set(ROUTE, [shop.route_config(b.route(cluster=v2))], push=False)
            await asyncio.to_thread(xds.start)
            first_after = await asyncio.to_thread(
                xds.wait_for, lambda r: r.stream > 1 and r.node_id != "", 15
            )
            assert first_after.type_url == LISTENER and first_after.version == "1"
            for type_url in (ROUTE, CLUSTER, ENDPOINTS):

                def resubscribed(r: Any, t: str = type_url) -> bool:
                    return bool(r.stream > 1 and r.type_url == t)

                request = await asyncio.to_thread(xds.wait_for, resubscribed, 10)
                assert request.names  # resubscribed by name on the new stream
            await eventually(lambda: core.route(shop.target, ECHO).cluster == v2)  # type: ignore[union-attr]
            assert await served(core, shop.target, 2) == Counter({"v2": 2})
            assert core.streams_opened >= 2

    asyncio.run(scenario())


def test_stream_reset_mid_update_never_half_applies(
    xds: XdsServer, shop: b.Service, backends: dict[str, int]
) -> None:
    v1 = shop.cluster("v1")
    v3 = shop.cluster("v3")
    serve_service(xds, shop, b.route(cluster=v1))

    async def scenario() -> None:
        async with mesh_core(xds) as core:
            core.watch(shop.target)
            await core.wait_ready(shop.target, 10)
            xds.hold(ENDPOINTS)
            xds.update(CLUSTER, [b.cluster(v3)])
            xds.update(ENDPOINTS, [b.endpoints(v3, [b.Locality([("127.0.0.1", backends["v2"])])])])
            xds.set(ROUTE, [shop.route_config(b.route(cluster=v3))])
            await asyncio.to_thread(
                xds.wait_for, lambda r: r.type_url == CLUSTER and v3 in r.names, 10
            )
            await asyncio.sleep(0.3)
            # RDS and CDS moved to v3 but its endpoints are held back: the old
            # view stays whole.
            assert core.route(shop.target, ECHO).cluster == v1  # type: ignore[union-attr]
            xds.drop_streams()
            await eventually(lambda: core.streams_opened >= 2)
            assert core.route(shop.target, ECHO).cluster == v1  # type: ignore[union-attr]
            xds.release(ENDPOINTS)
            await eventually(lambda: core.route(shop.target, ECHO).cluster == v3)  # type: ignore[union-attr]
            assert await served(core, shop.target, 2) == Counter({"v2": 2})

    asyncio.run(scenario())
