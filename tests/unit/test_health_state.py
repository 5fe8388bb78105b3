"""The active health state machine and schedule, sans-IO."""

from __future__ import annotations

import random

from mesh.balancer import ClusterBalancer, RetryLimiter
from mesh.cluster_health import ClusterHealth, HealthEvent
from mesh.endpoint import Endpoint, Health
from mesh.health import HealthState, next_check
from mesh.xds.cluster import Cluster, HealthCheck
from mesh.xds.endpoints import LoadAssignment, LocalityEndpoints

CHECK = HealthCheck(
    "grpc", interval_s=1.0, jitter_s=0.5, unhealthy_threshold=2, healthy_threshold=3
)


def status(state: HealthState) -> Health:
    return state.status


def test_unknown_becomes_healthy_on_the_first_success() -> None:
    state = HealthState(CHECK)
    assert status(state) is Health.UNKNOWN
    assert state.observe(True) is True
    assert status(state) is Health.HEALTHY


def test_unhealthy_after_threshold_failures_in_a_row() -> None:
    state = HealthState(CHECK)
    state.observe(True)
    assert state.observe(False) is False
    assert state.observe(True) is False  # the run is broken
    assert state.observe(False) is False
    assert state.observe(False) is True
    assert state.status is Health.UNHEALTHY


def test_healthy_again_after_threshold_successes_in_a_row() -> None:
    state = HealthState(CHECK)
    state.observe(False)
    state.observe(False)
    assert status(state) is Health.UNHEALTHY
    assert [state.observe(True) for _ in range(2)] == [False, False]
    state.observe(False)
    assert [state.observe(True) for _ in range(3)] == [False, False, True]
    assert state.status is Health.HEALTHY


def test_next_check_adds_up_to_jitter() -> None:
    rng = random.Random(4)
    times = [next_check(CHECK, 10.0, rng) for _ in range(200)]
    assert all(11.0 <= t <= 11.5 for t in times)
    assert max(times) - min(times) > 0.3
    steady = HealthCheck("tcp", interval_s=2.0)
    assert next_check(steady, 10.0, rng) == 12.0


def test_cluster_health_takes_unhealthy_endpoints_out_and_back() -> None:
    endpoints = (Endpoint("a", 1), Endpoint("b", 1), Endpoint("c", 1))
    balancer = ClusterBalancer(
        Cluster("c", "c", "round_robin"),
        LoadAssignment("c", (LocalityEndpoints("", 1, 0, endpoints),)),
        random.Random(0),
    )
    events: list[HealthEvent] = []
    health = ClusterHealth("c", None, CHECK, 0.0, on_event=events.append)
    health.attach(balancer)
    health.set_active({"a:1": Health.UNHEALTHY, "b:1": Health.HEALTHY, "gone:1": Health.UNHEALTHY})
    assert {balancer.pick().address for _ in range(20)} == {"b:1", "c:1"}
    health.set_active({"a:1": Health.HEALTHY})
    assert {balancer.pick().address for _ in range(20)} == {"a:1", "b:1", "c:1"}
    assert [(e.kind, e.address) for e in events] == [("unhealthy", "a:1"), ("healthy", "a:1")]
    assert health.endpoint_status("a:1")["active_health"] == "healthy"


def test_a_new_balancer_inherits_the_exclusions() -> None:
    endpoints = (Endpoint("a", 1), Endpoint("b", 1))
    assignment = LoadAssignment("c", (LocalityEndpoints("", 1, 0, endpoints),))
    health = ClusterHealth("c", None, CHECK, 0.0)
    health.attach(ClusterBalancer(Cluster("c", "c", "round_robin"), assignment))
    health.set_active({"a:1": Health.UNHEALTHY})
    fresh = ClusterBalancer(Cluster("c", "c", "round_robin"), assignment)
    health.attach(fresh)  # an EDS update built a new balancer
    assert {fresh.pick().address for _ in range(10)} == {"b:1"}


def test_retry_limiter_is_max_retries_or_the_budget() -> None:
    breaker = RetryLimiter(max_retries=2)
    assert [breaker.try_acquire(100) for _ in range(3)] == [True, True, False]
    breaker.release()
    assert breaker.try_acquire(100)
    budget = RetryLimiter(max_retries=2, budget_percent=20, min_concurrency=3)
    assert budget.limit(5) == 3  # the minimum concurrency
    assert budget.limit(100) == 20  # 20% of the requests in flight
    assert sum(budget.try_acquire(50) for _ in range(20)) == 10
