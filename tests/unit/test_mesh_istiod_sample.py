"""What a real istiod sends a proxyless node (docs/istiod-resources-sample.json)
must translate without a NACK, and route the way its VirtualService says."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2  # noqa: F401  (Any types)
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (  # noqa: F401
    http_connection_manager_pb2,
)
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2  # noqa: F401
from google.protobuf import json_format
from google.protobuf.message import Message

from mesh.balancer import ClusterBalancer, RequestCounter
from mesh.views import ClusterView, TargetView, build_view
from mesh.xds import type_urls as t
from mesh.xds.cluster import Cluster
from mesh.xds.decode import Resource, decode
from mesh.xds.endpoints import LoadAssignment
from tests.support.xds_builders import packed

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "istiod-resources-sample.json"
MESSAGES: dict[str, type[Message]] = {
    "lds": listener_pb2.Listener,
    "rds": route_pb2.RouteConfiguration,
    "cds": cluster_pb2.Cluster,
    "eds": endpoint_pb2.ClusterLoadAssignment,
}
TYPE_URLS = {
    "lds": t.LISTENER,
    "rds": t.ROUTE_CONFIGURATION,
    "cds": t.CLUSTER,
    "eds": t.CLUSTER_LOAD_ASSIGNMENT,
}
ECHO = "/meshgate.test.v1.EchoService/Echo"


def sample() -> dict[str, Any]:
    if not SAMPLE.exists():
        pytest.skip("docs/istiod-resources-sample.json not captured yet")
    return json.loads(SAMPLE.read_text())  # type: ignore[no-any-return]


def view_for(scenario: str) -> TargetView:
    document = sample()
    xds = document["scenarios"][scenario]["xds"]
    cache: dict[tuple[str, str], Resource] = {}
    for short, message_type in MESSAGES.items():
        for raw in xds[short]["resources"]:
            message = json_format.ParseDict(raw, message_type())
            decoded = decode(TYPE_URLS[short], packed(message))  # raises on a would-be NACK
            cache[TYPE_URLS[short], decoded.name] = decoded.resource

    def lookup(type_url: str, name: str) -> tuple[bool, Resource | None]:
        return True, cache.get((type_url, name))

    def cluster_view(cluster: Cluster, assignment: LoadAssignment) -> ClusterView:
        balancer = ClusterBalancer(cluster, assignment, random.Random(1))
        return ClusterView(cluster, assignment, balancer, RequestCounter(cluster.max_requests))

    return build_view(document["target"], lookup, cluster_view)


def test_virtual_service_routes_as_istio_configured() -> None:
    view = view_for("virtual_service_and_subsets")
    assert view.error is None
    rng = random.Random(8)
    canary = view.decide(ECHO, {"x-canary": "true", "x-user": "ann"}, rng, 0)
    assert canary is not None and canary.route_name == "canary"
    assert canary.cluster is not None and "|v2|" in canary.cluster
    assert canary.retry is not None and canary.retry.retry_on == frozenset({14, 1})
    assert canary.retry.max_attempts == 3
    assert canary.hash_key is not None and canary.timeout_s is None
    assert canary.max_requests == 1000
    fault = view.decide(ECHO, {"x-fault": "abort"}, rng, 0)
    assert fault is not None and fault.fault is not None
    assert (fault.fault.abort_code, fault.fault.abort_fraction) == (14, (500_000, 1_000_000))
    split = Counter(view.decide(ECHO, {}, rng, 0).cluster for _ in range(2000))  # type: ignore[union-attr]
    v2 = sum(n for name, n in split.items() if name and "|v2|" in name)
    assert abs(v2 - 400) < 90  # 20 % of 2000, 5 sd
    plain = view.decide(ECHO, {}, rng, 0)
    assert plain is not None and plain.timeout_s == 5


def test_service_entry_only_resolves() -> None:
    view = view_for("service_entry_only")
    assert view.error is None
    decision = view.decide(ECHO, {}, random.Random(0), 0)
    assert decision is not None and decision.error is None and decision.endpoint is not None
