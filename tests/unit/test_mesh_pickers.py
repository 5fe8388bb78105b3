"""Load-balancing pickers: one contract suite for all, then each one's specifics."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from mesh.balancer import ClusterBalancer
from mesh.endpoint import Endpoint, Health
from mesh.errors import NoEndpointError
from mesh.hashing_lb import MaglevPicker, RingHashPicker
from mesh.lb import PICKERS, LeastRequestPicker, Picker, RoundRobinPicker
from mesh.xds.cluster import Cluster
from mesh.xds.endpoints import LoadAssignment, LocalityEndpoints


def endpoints(count: int, **fields: object) -> list[Endpoint]:
    return [Endpoint("10.0.0.1", 1000 + i, **fields) for i in range(count)]  # type: ignore[arg-type]


@pytest.fixture(params=sorted(PICKERS))
def factory(request: pytest.FixtureRequest) -> Callable[[Sequence[Endpoint]], Picker]:
    return PICKERS[request.param]  # type: ignore[no-any-return]


def test_contract_never_picks_unroutable(factory: Callable[[Sequence[Endpoint]], Picker]) -> None:
    pool = [
        *endpoints(3),
        Endpoint("10.0.0.9", 1, health=Health.UNHEALTHY),
        Endpoint("10.0.0.9", 2, health=Health.DRAINING),
    ]
    picker = factory(pool)
    picked = {picker.pick(random.getrandbits(64)).port for _ in range(300)}
    assert picked == {1000, 1001, 1002}


def test_contract_no_routable_endpoint_raises(
    factory: Callable[[Sequence[Endpoint]], Picker],
) -> None:
    with pytest.raises(NoEndpointError):
        factory(endpoints(2, health=Health.UNHEALTHY))


def test_round_robin_is_smooth() -> None:
    a, b = Endpoint("a", 1, weight=3), Endpoint("b", 1, weight=1)
    picker = RoundRobinPicker([a, b], random.Random(0))
    sequence = [picker.pick().host for _ in range(8)]
    assert sequence.count("a") == 6 and sequence.count("b") == 2
    assert "bb" not in "".join(sequence) and "aaaa" not in "".join(sequence)


def test_least_request_prefers_the_idle_endpoint() -> None:
    busy, idle = endpoints(2)
    picker = LeastRequestPicker([busy, idle], random.Random(0))
    for _ in range(5):
        picker.started(busy)
    counts = Counter(picker.pick().port for _ in range(300))
    # P2C: the busy one wins only when both samples are the busy one (~1/4).
    assert counts[idle.port] > 180
    for _ in range(5):
        picker.finished(busy)
    assert picker.in_flight(busy) == 0


@pytest.mark.parametrize("cls", [RingHashPicker, MaglevPicker])
def test_hashing_is_consistent_and_moves_few_keys(cls: type) -> None:
    pool = endpoints(5)
    before = cls(pool)
    after = cls(pool[:4])
    keys = [random.Random(i).getrandbits(64) for i in range(2000)]
    assert [before.pick(k) for k in keys] == [before.pick(k) for k in keys]
    moved = sum(
        before.pick(k) != after.pick(k) for k in keys if before.pick(k).port != pool[4].port
    )
    assert moved < 0.15 * len(keys)


@pytest.mark.parametrize("cls", [RingHashPicker, MaglevPicker])
def test_hashing_honours_weights(cls: type) -> None:
    heavy, light = Endpoint("h", 1, weight=3), Endpoint("l", 1, weight=1)
    picker = cls([heavy, light])
    rng = random.Random(5)
    counts = Counter(picker.pick(rng.getrandbits(64)).host for _ in range(4000))
    assert 0.65 < counts["h"] / 4000 < 0.85


def assignment(*localities: LocalityEndpoints) -> LoadAssignment:
    return LoadAssignment("c", localities)


def test_balancer_uses_the_best_priority_with_routable_endpoints() -> None:
    cluster = Cluster("c", "c", "round_robin")
    primary = LocalityEndpoints("r/a/", 1, 0, (Endpoint("p", 1, health=Health.UNHEALTHY),))
    backup = LocalityEndpoints("r/b/", 1, 1, (Endpoint("s", 1),))
    balancer = ClusterBalancer(cluster, assignment(primary, backup), random.Random(0))
    assert {balancer.pick().host for _ in range(10)} == {"s"}
    healthy = LocalityEndpoints("r/a/", 1, 0, (Endpoint("p", 1),))
    balancer = ClusterBalancer(cluster, assignment(healthy, backup), random.Random(0))
    assert {balancer.pick().host for _ in range(10)} == {"p"}


def test_balancer_splits_by_locality_weight() -> None:
    cluster = Cluster("c", "c", "round_robin")
    heavy = LocalityEndpoints("r/a/", 3, 0, (Endpoint("a1", 1), Endpoint("a2", 1)))
    light = LocalityEndpoints("r/b/", 1, 0, (Endpoint("b1", 1),))
    balancer = ClusterBalancer(cluster, assignment(heavy, light), random.Random(11))
    counts = Counter(balancer.pick().host for _ in range(4000))
    assert abs(counts["b1"] - 1000) < 140  # Binomial(4000, 1/4): 5 sd
    assert abs(counts["a1"] - counts["a2"]) < 100  # round robin inside the locality


def test_balancer_without_endpoints_raises() -> None:
    balancer = ClusterBalancer(Cluster("c", "c", "round_robin"), assignment())
    with pytest.raises(NoEndpointError):
        balancer.pick()


def test_balancer_feeds_least_request_counts() -> None:
    cluster = Cluster("c", "c", "least_request")
    group = LocalityEndpoints("r/a/", 1, 0, tuple(endpoints(2)))
    balancer = ClusterBalancer(cluster, assignment(group), random.Random(0))
    busy = group.endpoints[0]
    for _ in range(10):
        balancer.started(busy)
    counts = Counter(balancer.pick().port for _ in range(200))
    assert counts[group.endpoints[1].port] > 120
