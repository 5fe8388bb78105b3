"""Outlier detection with injected time: each check ejects, ejections grow and
shrink, max_ejection_percent caps them, and the balancer leaves ejected
endpoints out."""

from __future__ import annotations

import random

import pytest

from mesh.balancer import ClusterBalancer
from mesh.cluster_health import ClusterHealth, HealthEvent
from mesh.endpoint import Endpoint
from mesh.outlier import Outcome, OutlierDetector, Reason
from mesh.xds.cluster import Cluster, OutlierDetection
from mesh.xds.endpoints import LoadAssignment, LocalityEndpoints

A, B, C, D, E = (f"10.0.0.{i}:80" for i in range(1, 6))
FIVE = (A, B, C, D, E)


def detector(hosts=FIVE, **config) -> OutlierDetector:
    config.setdefault("max_ejection_percent", 100)
    found = OutlierDetector(OutlierDetection(**config), now=0.0, rng=random.Random(1))
    found.set_endpoints(hosts)
    return found


def fail(d: OutlierDetector, address: str, times: int, now: float = 1.0, outcome=Outcome.ERROR):
    return [d.record(address, outcome, now) for _ in range(times)]


def test_consecutive_5xx_ejects_on_the_nth_failure_in_a_row() -> None:
    d = detector(consecutive_5xx=3)
    assert fail(d, A, 2) == [None, None]
    d.record(A, Outcome.SUCCESS, 1.0)  # a success breaks the run
    assert fail(d, A, 2) == [None, None]
    ejection = d.record(A, Outcome.ERROR, 1.0)
    assert ejection is not None and ejection.reason is Reason.CONSECUTIVE_5XX
    assert ejection.duration_s == 30.0
    assert d.ejected == {A}


def test_consecutive_gateway_failure_counts_only_gateway_failures() -> None:
    d = detector(
        consecutive_5xx=0, consecutive_gateway_failure=2, enforcing_consecutive_gateway_failure=100
    )
    fail(d, A, 1, outcome=Outcome.GATEWAY_FAILURE)
    fail(d, A, 1, outcome=Outcome.ERROR)  # a 500 is no gateway failure: the run restarts
    assert fail(d, A, 1, outcome=Outcome.GATEWAY_FAILURE) == [None]
    ejection = d.record(A, Outcome.GATEWAY_FAILURE, 1.0)
    assert ejection is not None and ejection.reason is Reason.CONSECUTIVE_GATEWAY_FAILURE


def test_gateway_failure_is_off_by_default_as_in_envoy() -> None:
    d = detector(consecutive_5xx=0)
    assert set(fail(d, A, 20, outcome=Outcome.GATEWAY_FAILURE)) == {None}


def test_ejection_time_grows_per_ejection_up_to_the_maximum_and_decays() -> None:
    d = detector(consecutive_5xx=1, interval_s=10, base_ejection_time_s=10, max_ejection_time_s=25)
    durations = []
    now = 0.0
    for _ in range(4):
        ejection = d.record(A, Outcome.ERROR, now)
        assert ejection is not None
        durations.append(ejection.duration_s)
        # Sweep every interval until it comes back.
        while A in d.ejected:
            now += 10
            d.sweep(now)
    assert durations == [10, 20, 25, 25]
    assert d.ejections(A) == 4
    # Every interval spent in the picker takes one ejection off the multiplier.
    for _ in range(3):
        now += 10
        d.sweep(now)
    assert d.ejections(A) == 1


def test_sweep_brings_an_endpoint_back_only_when_its_time_is_up() -> None:
    d = detector(consecutive_5xx=1, interval_s=1, base_ejection_time_s=3)
    d.record(A, Outcome.ERROR, 0.5)
    assert [e.ejected for e in d.sweep(1.0)] == []
    assert d.sweep(2.0) == []
    back = d.sweep(3.5)
    assert [(e.address, e.ejected) for e in back] == [(A, False)]
    assert d.ejected == frozenset()


def test_max_ejection_percent_caps_ejections_but_one_always_may_go() -> None:
    d = detector(consecutive_5xx=1, max_ejection_percent=40)
    for host in FIVE:
        d.record(host, Outcome.ERROR, 1.0)
    assert len(d.ejected) == 2  # 40% of 5
    one = detector((A, B), consecutive_5xx=1, max_ejection_percent=10)
    one.record(A, Outcome.ERROR, 1.0)
    one.record(B, Outcome.ERROR, 1.0)
    assert one.ejected == {A}


def test_success_rate_ejects_the_outlier_among_enough_busy_hosts() -> None:
    d = detector(
        consecutive_5xx=0,
        interval_s=1,
        success_rate_request_volume=10,
        success_rate_minimum_hosts=5,
        success_rate_stdev_factor=1000,
    )
    for host in FIVE:
        for i in range(20):
            bad = host == C and i % 2 == 0
            d.record(host, Outcome.ERROR if bad else Outcome.SUCCESS, 0.5)
    events = d.sweep(1.0)
    assert [(e.address, e.reason) for e in events] == [(C, Reason.SUCCESS_RATE)]


def test_success_rate_needs_minimum_hosts_with_request_volume() -> None:
    d = detector(
        consecutive_5xx=0,
        interval_s=1,
        success_rate_request_volume=10,
        success_rate_minimum_hosts=5,
    )
    for host in (A, B, C, D):  # E gets too few requests
        for i in range(20):
            d.record(host, Outcome.ERROR if host == C and i % 2 else Outcome.SUCCESS, 0.5)
    assert d.sweep(1.0) == []


def test_failure_percentage_ejects_above_the_threshold_and_counts_per_interval() -> None:
    d = detector(
        (A, B),
        consecutive_5xx=0,
        interval_s=1,
        enforcing_success_rate=0,
        enforcing_failure_percentage=100,
        failure_percentage_threshold=50,
        failure_percentage_minimum_hosts=2,
        failure_percentage_request_volume=10,
    )
    for i in range(10):
        d.record(A, Outcome.SUCCESS, 0.5)
        d.record(B, Outcome.ERROR if i < 4 else Outcome.SUCCESS, 0.5)
    assert d.sweep(1.0) == []  # 40% failed
    for _ in range(10):
        d.record(A, Outcome.SUCCESS, 1.5)
        d.record(B, Outcome.GATEWAY_FAILURE, 1.5)
    events = d.sweep(2.0)
    assert [(e.address, e.reason) for e in events] == [(B, Reason.FAILURE_PERCENTAGE)]


def test_enforcing_zero_detects_nothing() -> None:
    d = detector(consecutive_5xx=1, enforcing_consecutive_5xx=0)
    assert set(fail(d, A, 10)) == {None}


def test_endpoints_that_leave_are_forgotten() -> None:
    d = detector(consecutive_5xx=1)
    d.record(A, Outcome.ERROR, 1.0)
    d.set_endpoints((B, C))
    assert d.ejected == frozenset()
    assert d.record(A, Outcome.ERROR, 1.0) is None


def balancer_of(policy: str = "round_robin", n: int = 4, **cluster) -> ClusterBalancer:
    endpoints = tuple(Endpoint(f"10.0.0.{i}", 80) for i in range(1, n + 1))
    return ClusterBalancer(
        Cluster("c", "c", policy, **cluster),
        LoadAssignment("c", (LocalityEndpoints("", 1, 0, endpoints),)),
        random.Random(3),
    )


@pytest.mark.parametrize(
    "policy", ["round_robin", "least_request", "random", "ring_hash", "maglev"]
)
def test_cluster_health_takes_ejected_endpoints_out_of_every_picker(policy: str) -> None:
    events: list[HealthEvent] = []
    balancer = balancer_of(policy)
    health = ClusterHealth(
        "c",
        OutlierDetection(consecutive_5xx=2, interval_s=1, base_ejection_time_s=5),
        None,
        0.0,
        random.Random(0),
        events.append,
    )
    health.attach(balancer)
    health.record(A, Outcome.ERROR, 1.0)
    health.record(A, Outcome.ERROR, 1.0)
    rng = random.Random(9)
    picks = {balancer.pick(rng.getrandbits(64)).address for _ in range(400)}
    assert A not in picks and len(picks) == 3
    health.sweep(6.5)
    picks = {balancer.pick(rng.getrandbits(64)).address for _ in range(400)}
    assert A in picks
    assert [(e.kind, e.address, e.reason) for e in events] == [
        ("ejected", A, "consecutive_5xx"),
        ("restored", A, ""),
    ]


def test_panic_spreads_over_every_endpoint_below_the_threshold() -> None:
    balancer = balancer_of(n=4)
    balancer.exclude(frozenset({A, B}))  # 50% healthy: not below 50
    assert not balancer.panic
    assert {balancer.pick().address for _ in range(40)} == {C, D}
    balancer.exclude(frozenset({A, B, C}))
    assert balancer.panic
    assert {balancer.pick().address for _ in range(40)} == {A, B, C, D}
    balancer.exclude(frozenset({A, B, C, D}))
    assert {balancer.pick().address for _ in range(40)} == {A, B, C, D}


def test_panic_threshold_zero_fails_instead() -> None:
    from mesh.errors import NoEndpointError

    balancer = balancer_of(n=2, panic_threshold=0)
    balancer.exclude(frozenset({"10.0.0.1:80", "10.0.0.2:80"}))
    with pytest.raises(NoEndpointError):
        balancer.pick()


@pytest.mark.parametrize(
    "policy", ["round_robin", "least_request", "random", "ring_hash", "maglev"]
)
def test_pick_avoids_the_hosts_already_tried_when_another_exists(policy: str) -> None:
    balancer = balancer_of(policy, n=3)
    for key in range(50):
        first = balancer.pick(key)
        second = balancer.pick(key, avoid={first.address})
        assert second.address != first.address
        third = balancer.pick(key, avoid={first.address, second.address})
        assert third.address not in {first.address, second.address}
    only = balancer_of(policy, n=1)
    assert only.pick(1, avoid={A}).address == A  # nothing else: the same host again


def test_least_request_counts_survive_a_health_rebuild() -> None:
    balancer = balancer_of("least_request", n=2)
    busy = Endpoint("10.0.0.1", 80)
    for _ in range(5):
        balancer.started(busy)
    balancer.exclude(frozenset({C}))  # rebuilds the pickers
    picks = [balancer.pick().address for _ in range(100)]
    # Two choices of two: the idle one wins unless both samples are the busy one (3 in 4).
    assert picks.count(B) > 65
