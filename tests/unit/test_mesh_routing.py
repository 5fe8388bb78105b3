"""Virtual host and route selection, weighted picks, faults, retries, timeouts."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from google.protobuf.message import Message

from mesh.balancer import ClusterBalancer, RequestCounter
from mesh.fault import FaultPolicy, fault_decision
from mesh.retry import RetryPolicy, retry_backoff, should_retry
from mesh.route_match import DomainMatch, domain_match, select_virtual_host
from mesh.views import ClusterView, Incomplete, TargetView, build_view
from mesh.xds import type_urls as t
from mesh.xds.cluster import Cluster
from mesh.xds.decode import Resource, decode
from mesh.xds.endpoints import LoadAssignment
from mesh.xds.route_config import VirtualHost
from tests.support import xds_builders as b

HOST, PORT = "shop.default.svc.cluster.local", 50051
TARGET = f"{HOST}:{PORT}"
V1 = b.cluster_name(HOST, PORT, "v1")
V2 = b.cluster_name(HOST, PORT, "v2")
ECHO = "/meshgate.test.v1.EchoService/Echo"


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("shop:80", "shop:80", DomainMatch.EXACT),
        ("SHOP:80", "shop:80", DomainMatch.EXACT),
        ("*.default:80", "shop.default:80", DomainMatch.SUFFIX),
        ("*.default:80", ".default:80", None),
        ("shop.*", "shop.default", DomainMatch.PREFIX),
        ("*", "anything", DomainMatch.UNIVERSAL),
        ("sh*p", "shop", None),
    ],
)
def test_domain_match_kinds(pattern: str, host: str, expected: DomainMatch | None) -> None:
    assert domain_match(pattern, host) == expected


def test_virtual_host_precedence_exact_suffix_prefix_universal_longest_first() -> None:
    def vhost(name: str, *domains: str) -> VirtualHost:
        return VirtualHost(name, domains, (), {})

    hosts = [
        vhost("any", "*"),
        vhost("prefix", "shop.*"),
        vhost("short-suffix", "*.com"),
        vhost("long-suffix", "*.example.com"),
        vhost("exact", "shop.example.com"),
    ]
    pick = lambda host: select_virtual_host(hosts, host).name  # type: ignore[union-attr]  # noqa: E731
    assert pick("shop.example.com") == "exact"
    assert pick("cart.example.com") == "long-suffix"
    assert pick("cart.other.com") == "short-suffix"
    assert pick("shop.internal") == "prefix"
    assert pick("cart.internal") == "any"
    assert select_virtual_host([vhost("x", "x")], "y") is None


class Store:
    """An in-memory lookup standing in for the ADS cache."""

    def __init__(self, *messages: tuple[str, Message]) -> None:
        self.resources: dict[tuple[str, str], Resource | None] = {}
        for type_url, message in messages:
            decoded = decode(type_url, b.packed(message))
            self.resources[type_url, decoded.name] = decoded.resource

    def lookup(self, type_url: str, name: str) -> tuple[bool, Resource | None]:
        if (type_url, name) not in self.resources:
            return False, None
        return True, self.resources[type_url, name]


def cluster_view(cluster: Cluster, assignment: LoadAssignment) -> ClusterView:
    return ClusterView(
        cluster,
        assignment,
        ClusterBalancer(cluster, assignment, random.Random(1)),
        RequestCounter(cluster.max_requests),
    )


def shop(*routes: Message, listener: Message | None = None) -> Store:
    return Store(
        (t.LISTENER, listener or b.listener(TARGET)),
        (t.ROUTE_CONFIGURATION, b.route_config(TARGET, HOST, PORT, list(routes))),  # type: ignore[arg-type]
        (t.CLUSTER, b.cluster(V1)),
        (t.CLUSTER, b.cluster(V2, max_requests=5)),
        (t.CLUSTER_LOAD_ASSIGNMENT, b.endpoints(V1, [b.Locality([("10.0.0.1", 1)])])),
        (t.CLUSTER_LOAD_ASSIGNMENT, b.endpoints(V2, [b.Locality([("10.0.0.2", 2)])])),
    )


def view_of(store: Store) -> TargetView:
    return build_view(TARGET, store.lookup, cluster_view)


def test_incomplete_chain_raises_until_every_link_is_answered() -> None:
    store = shop(b.route(cluster=V1))
    del store.resources[t.CLUSTER_LOAD_ASSIGNMENT, V1]
    with pytest.raises(Incomplete, match="endpoints"):
        view_of(store)
    store.resources[t.CLUSTER_LOAD_ASSIGNMENT, V1] = None  # does not exist: no endpoints
    decision = view_of(store).decide(ECHO, {}, random.Random(0), 0)
    assert decision is not None and decision.error is not None and "no healthy" in decision.error


def test_header_route_goes_to_subset_and_default_to_other() -> None:
    view = view_of(
        shop(
            b.route(headers=[b.header("x-version", exact="v2")], cluster=V2, name="canary"),
            b.route(cluster=V1, name="default"),
        )
    )
    rng = random.Random(0)
    canary = view.decide(ECHO, {"x-version": "v2"}, rng, 0)
    default = view.decide(ECHO, {"x-version": "v3"}, rng, 0)
    assert canary is not None and (canary.route_name, canary.address) == ("canary", "10.0.0.2:2")
    assert canary.max_requests == 5
    assert default is not None and (default.route_name, default.address) == (
        "default",
        "10.0.0.1:1",
    )


def test_no_route_matched_is_none() -> None:
    view = view_of(shop(b.route(path="/only/this", cluster=V1)))
    assert view.decide(ECHO, {}, random.Random(0), 0) is None


def test_weighted_split_follows_weights_with_a_seeded_rng() -> None:
    view = view_of(shop(b.route(weights={V1: 75, V2: 25})))
    rng = random.Random(42)
    counts = Counter(view.decide(ECHO, {}, rng, 0).cluster for _ in range(4000))  # type: ignore[union-attr]
    # Binomial(4000, 0.25): sd ~ 27; 5 sd either side.
    assert abs(counts[V2] - 1000) < 140
    rng2 = random.Random(9)
    seq = lambda: [view.decide(ECHO, {}, rng2, 0).cluster for _ in range(50)]  # type: ignore[union-attr]  # noqa: E731
    first = seq()
    rng2 = random.Random(9)
    assert seq() == first  # a seeded rng replays the same picks


def test_runtime_fraction_gates_a_route() -> None:
    first = b.route(cluster=V2, name="sampled")
    first.match.runtime_fraction.default_value.numerator = 10
    view = view_of(shop(first, b.route(cluster=V1, name="rest")))
    rng = random.Random(7)
    counts = Counter(view.decide(ECHO, {}, rng, 0).route_name for _ in range(2000))  # type: ignore[union-attr]
    assert abs(counts["sampled"] - 200) < 70


def test_timeout_route_overrides_listener_and_zero_means_none() -> None:
    listener = b.listener(TARGET, max_stream_duration=9)
    view = view_of(
        shop(b.route(prefix="/a", cluster=V1, timeout=2), b.route(cluster=V1), listener=listener)
    )
    rng = random.Random(0)
    assert view.decide("/a/x", {}, rng, 0).timeout_s == 2  # type: ignore[union-attr]
    assert view.decide("/b/x", {}, rng, 0).timeout_s == 9  # type: ignore[union-attr]
    zero = view_of(shop(b.route(cluster=V1, timeout=0), listener=listener))
    assert zero.decide("/b", {}, rng, 0).timeout_s is None  # type: ignore[union-attr]


def test_fault_override_order_route_over_listener() -> None:
    listener = b.listener(TARGET, fault=b.abort(13))
    view = view_of(
        shop(
            b.route(prefix="/a", cluster=V1, fault=b.abort(14)),
            b.route(cluster=V1),
            listener=listener,
        )
    )
    rng = random.Random(0)
    assert view.decide("/a", {}, rng, 0).fault.abort_code == 14  # type: ignore[union-attr]
    assert view.decide("/b", {}, rng, 0).fault.abort_code == 13  # type: ignore[union-attr]


def test_non_forwarding_route_and_missing_cluster_fail() -> None:
    route = b.route(cluster=V1)
    route.ClearField("route")
    route.non_forwarding_action.SetInParent()
    view = view_of(shop(route))
    decision = view.decide(ECHO, {}, random.Random(0), 0)
    assert decision is not None and decision.error == "matched a non-forwarding route"
    store = shop(b.route(cluster=V1))
    store.resources[t.CLUSTER, V1] = None
    decision = view_of(store).decide(ECHO, {}, random.Random(0), 0)
    assert decision is not None and decision.cluster == V1 and "not found" in (decision.error or "")


def test_hash_policy_gives_a_stable_key_per_header_value() -> None:
    route = b.route(cluster=V1)
    route.route.hash_policy.add().header.header_name = "x-user"
    view = view_of(shop(route))
    rng = random.Random(0)
    one = view.decide(ECHO, {"x-user": "ann"}, rng, 0)
    two = view.decide(ECHO, {"x-user": "ann"}, rng, 0)
    other = view.decide(ECHO, {"x-user": "bob"}, rng, 0)
    assert one is not None and two is not None and other is not None
    assert one.hash_key == two.hash_key != other.hash_key
    assert view.decide(ECHO, {}, rng, 0).hash_key is None  # type: ignore[union-attr]


def test_circuit_breaker_counter() -> None:
    view = view_of(shop(b.route(cluster=V2)))
    decision = view.decide(ECHO, {}, random.Random(0), 0)
    assert decision is not None and decision.endpoint is not None
    assert all(decision.begin(decision.endpoint) for _ in range(5))
    assert not decision.begin(decision.endpoint)
    decision.end(decision.endpoint)
    assert decision.begin(decision.endpoint)


def test_fault_decision_fractions_and_headers() -> None:
    rng = random.Random(3)
    always = FaultPolicy(
        abort_code=14, abort_fraction=(100, 100), delay_s=0.2, delay_fraction=(100, 100)
    )
    assert fault_decision(always, rng) == (0.2, 14)
    assert fault_decision(None, rng) == (None, None)
    half = FaultPolicy(abort_code=13, abort_fraction=(50, 100))
    aborts = sum(fault_decision(half, rng)[1] == 13 for _ in range(2000))
    assert abs(aborts - 1000) < 120
    by_header = FaultPolicy(abort_from_header=True, abort_fraction=(100, 100))
    assert fault_decision(by_header, rng, {"x-envoy-fault-abort-grpc-request": "8"}) == (None, 8)
    assert fault_decision(by_header, rng, {"x-envoy-fault-abort-request": "503"}) == (None, 14)
    assert fault_decision(by_header, rng, {}) == (None, None)


def test_should_retry_and_backoff() -> None:
    policy = RetryPolicy(
        retry_on=frozenset({14}), max_attempts=3, backoff_base_s=0.1, backoff_max_s=0.3
    )
    assert should_retry(policy, 14, 1) and should_retry(policy, 14, 2)
    assert not should_retry(policy, 14, 3)
    assert not should_retry(policy, 13, 1)
    assert not should_retry(None, 14, 1)
    yaml_policy = RetryPolicy(retry_on=frozenset({14}), max_attempts=8)
    assert should_retry(yaml_policy, 14, 7) and not should_retry(yaml_policy, 14, 8)
    rng = random.Random(0)
    assert all(0 <= retry_backoff(policy, 1, rng) <= 0.1 for _ in range(50))
    assert all(0 <= retry_backoff(policy, 5, rng) <= 0.3 for _ in range(50))
