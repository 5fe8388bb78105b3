"""The health loop with a fake prober and clock: probes on schedule, states
applied, and with several workers only the elected one probes."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from gateway.health_share import HealthShare
from gateway.upstream.health_monitor import HealthMonitor
from mesh.balancer import ClusterBalancer
from mesh.cluster_health import ClusterHealth
from mesh.endpoint import Endpoint
from mesh.xds.cluster import Cluster, HealthCheck
from mesh.xds.endpoints import LoadAssignment, LocalityEndpoints

pytestmark = pytest.mark.anyio
CHECK = HealthCheck("grpc", interval_s=1.0, unhealthy_threshold=2, healthy_threshold=1)
GOOD, BAD = "10.0.0.1:80", "10.0.0.2:80"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeProber:
    def __init__(self) -> None:
        self.down: set[str] = {BAD}
        self.probes: list[str] = []

    async def probe(self, check: HealthCheck, address: str) -> bool:
        self.probes.append(address)
        return address not in self.down

    async def retain(self, addresses: set[str]) -> None:
        pass

    async def close(self) -> None:
        pass


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def cluster() -> tuple[ClusterHealth, ClusterBalancer]:
    endpoints = (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80))
    balancer = ClusterBalancer(
        Cluster("c", "c", "round_robin", health_check=CHECK),
        LoadAssignment("c", (LocalityEndpoints("", 1, 0, endpoints),)),
        random.Random(0),
    )
    health = ClusterHealth("c", None, CHECK, 0.0)
    health.attach(balancer)
    return health, balancer


def monitor(health: ClusterHealth, clock: Clock, prober: FakeProber, share=None) -> HealthMonitor:
    return HealthMonitor(
        lambda: {"static/c": health},
        share=share,
        prober=prober,
        clock=clock,
        rng=random.Random(0),
    )


async def run_ticks(clock: Clock, monitors: list[HealthMonitor], seconds: float) -> None:
    end = clock.now + seconds
    while clock.now < end:
        for m in monitors:
            await m.tick()
        for _ in range(3):
            await asyncio.sleep(0)  # let the probes finish
        clock.now += 0.25


async def test_probes_every_interval_and_takes_the_failing_endpoint_out() -> None:
    clock, prober = Clock(), FakeProber()
    health, balancer = cluster()
    the_monitor = monitor(health, clock, prober)
    await run_ticks(clock, [the_monitor], 0.5)
    assert prober.probes.count(BAD) == 1  # one failure: not yet past the threshold
    assert {balancer.pick().address for _ in range(10)} == {GOOD, BAD}
    await run_ticks(clock, [the_monitor], 1.5)
    assert prober.probes.count(BAD) == 2
    assert {balancer.pick().address for _ in range(10)} == {GOOD}
    prober.down.clear()
    await run_ticks(clock, [the_monitor], 1.5)
    assert {balancer.pick().address for _ in range(10)} == {GOOD, BAD}
    await the_monitor.close()


async def test_only_the_elected_worker_probes_and_the_others_follow(tmp_path: Path) -> None:
    clock, prober_a, prober_b = Clock(), FakeProber(), FakeProber()
    health_a, balancer_a = cluster()
    health_b, balancer_b = cluster()
    a = monitor(health_a, clock, prober_a, HealthShare(tmp_path))
    b = monitor(health_b, clock, prober_b, HealthShare(tmp_path))
    await run_ticks(clock, [a, b], 3.0)
    assert len(prober_a.probes) == 6 and prober_b.probes == []  # 2 endpoints, 3 rounds
    assert {balancer_b.pick().address for _ in range(10)} == {GOOD}
    await a.close()  # the leader goes away: its lock with it
    prober_b.down.clear()
    await run_ticks(clock, [b], 1.0)
    assert prober_b.probes
    assert {balancer_b.pick().address for _ in range(10)} == {GOOD, BAD}
    assert balancer_a is not balancer_b
    await b.close()


async def test_a_cluster_built_after_the_publish_still_learns_the_states(tmp_path: Path) -> None:
    clock, prober = Clock(), FakeProber()
    leader_health, _ = cluster()
    leader = monitor(leader_health, clock, prober, HealthShare(tmp_path))
    late: dict[str, ClusterHealth] = {}
    follower = HealthMonitor(
        lambda: late,
        share=HealthShare(tmp_path),
        prober=FakeProber(),
        clock=clock,
    )
    await run_ticks(clock, [leader, follower], 1.5)  # two failed probes: BAD is out
    # The follower's cluster arrives now (an xDS update, a reload): the file
    # does not change again, yet the next tick applies it.
    health, balancer = cluster()
    late["static/c"] = health
    await run_ticks(clock, [follower], 0.25)
    assert {balancer.pick().address for _ in range(10)} == {GOOD}
    await leader.close()
    await follower.close()
