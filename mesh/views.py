"""A target's resolved view: LDS -> RDS -> CDS -> EDS, complete and immutable.

A view is built only when every link of the chain has an answer; the
resolver swaps it in whole, so a request never sees half an update.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mesh.balancer import ClusterBalancer, RequestCounter, RetryLimiter
from mesh.cluster_health import ClusterHealth
from mesh.decision import UNAVAILABLE, RouteDecision
from mesh.errors import NoEndpointError
from mesh.hashing import RequestAttributes, hash_key
from mesh.route_match import (
    Headers,
    effective_fault,
    effective_timeout,
    match_route,
    pick_cluster,
    select_virtual_host,
)
from mesh.security import UpstreamTls
from mesh.xds import type_urls
from mesh.xds.cluster import Cluster
from mesh.xds.decode import Resource
from mesh.xds.endpoints import LoadAssignment
from mesh.xds.listener import HttpConnectionManager, Listener
from mesh.xds.route_config import RouteConfig, VirtualHost

__all__ = ["UNAVAILABLE", "ClusterView", "Incomplete", "TargetView", "build_view"]


@dataclass(frozen=True, slots=True)
class ClusterView:
    cluster: Cluster
    assignment: LoadAssignment
    balancer: ClusterBalancer
    requests: RequestCounter
    health: ClusterHealth | None = None
    retries: RetryLimiter | None = None
    # The cluster's TLS with the bootstrap's files; None: plaintext.
    security: UpstreamTls | None = None
    # Set when the cluster asks for TLS the bootstrap cannot provide: fail, never plaintext.
    security_error: str | None = None


@dataclass(frozen=True, slots=True)
class TargetView:
    target: str
    listener_name: str
    hcm: HttpConnectionManager | None
    route_config_name: str
    virtual_host: VirtualHost | None
    # None for a cluster that does not exist: requests routed there fail.
    clusters: Mapping[str, ClusterView | None]
    error: str | None = None

    def decide(
        self,
        path: str,
        headers: Headers,
        rng: random.Random,
        channel_key: int,
        attributes: RequestAttributes | None = None,
    ) -> RouteDecision | None:
        if self.error is not None or self.hcm is None:
            return self._failed("", None, self.error or "listener has no HTTP routes")
        if self.virtual_host is None:
            return None
        route = match_route(self.virtual_host, path, headers, rng)
        if route is None:
            return None
        if route.action is None:
            return self._failed(route.name, None, "matched a non-forwarding route")
        weighted = pick_cluster(route.action, rng)
        view = self.clusters.get(weighted.name)
        fault = effective_fault(self.hcm.http_filters, self.virtual_host, route, weighted)
        timeout = effective_timeout(
            route.action.max_stream_duration_s, self.hcm.max_stream_duration_s
        )
        if view is None:
            return self._failed(route.name, weighted.name, f"cluster {weighted.name} not found")
        if view.security_error is not None:
            return self._failed(route.name, weighted.name, view.security_error)
        key = hash_key(route.action.hash_policies, headers, channel_key, attributes)
        try:
            endpoint = view.balancer.pick(key)
        except NoEndpointError as exc:
            return self._failed(route.name, weighted.name, f"{weighted.name}: {exc}")
        return RouteDecision(
            target=self.target,
            route_name=route.name,
            cluster=weighted.name,
            endpoint=endpoint,
            timeout_s=timeout,
            retry=route.action.retry_policy,
            fault=fault,
            hash_key=key,
            max_requests=view.requests.max_requests,
            balancer=view.balancer,
            requests=view.requests,
            health=view.health,
            retries=view.retries,
            security=view.security,
        )

    def _failed(self, route: str, cluster: str | None, error: str) -> RouteDecision:
        return RouteDecision(self.target, route, cluster, None, error=error)


class Incomplete(Exception):
    """Some link of the chain has no answer yet; keep the previous view."""


Lookup = Callable[[str, str], "tuple[bool, Resource | None]"]
ClusterViews = Callable[[Cluster, LoadAssignment], ClusterView]


def build_view(target: str, lookup: Lookup, cluster_view: ClusterViews) -> TargetView:
    """Resolve ``target``; ``lookup(type_url, name)`` is (answered, resource or None).

    Raises Incomplete while any link is still only requested.
    """
    answered, resource = lookup(type_urls.LISTENER, target)
    if not answered:
        raise Incomplete(f"listener {target}")
    if not isinstance(resource, Listener):
        return _error_view(target, f"listener {target} does not exist")
    hcm = resource.hcm
    if hcm is None:
        return _error_view(target, f"listener {target} is not a client (API) listener")
    config = hcm.inline_route_config
    route_name = config.name if config is not None else (hcm.rds_name or "")
    if config is None:
        answered, found = lookup(type_urls.ROUTE_CONFIGURATION, route_name)
        if not answered:
            raise Incomplete(f"route config {route_name}")
        if not isinstance(found, RouteConfig):
            return _error_view(target, f"route config {route_name} does not exist")
        config = found
    vhost = select_virtual_host(config.virtual_hosts, target)
    clusters: dict[str, ClusterView | None] = {}
    names = {c.name for r in (vhost.routes if vhost else ()) if r.action for c in r.action.clusters}
    for name in sorted(names):
        clusters[name] = _cluster(name, lookup, cluster_view)
    return TargetView(target, resource.name, hcm, route_name, vhost, clusters)


def _cluster(name: str, lookup: Lookup, cluster_view: ClusterViews) -> ClusterView | None:
    answered, cluster = lookup(type_urls.CLUSTER, name)
    if not answered:
        raise Incomplete(f"cluster {name}")
    if not isinstance(cluster, Cluster):
        return None
    answered, assignment = lookup(type_urls.CLUSTER_LOAD_ASSIGNMENT, cluster.eds_service_name)
    if not answered:
        raise Incomplete(f"endpoints {cluster.eds_service_name}")
    if not isinstance(assignment, LoadAssignment):
        assignment = LoadAssignment(cluster.eds_service_name, ())
    return cluster_view(cluster, assignment)


def _error_view(target: str, error: str) -> TargetView:
    return TargetView(target, target, None, "", None, {}, error=error)
