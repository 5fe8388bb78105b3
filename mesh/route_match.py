"""Route selection for one RPC, sans-IO (gRFC A28).

Virtual host by domain (exact > ``*.suffix`` > ``prefix.*`` > ``*``, longest
first within a kind), then the first route whose path, headers and runtime
fraction match, then a cluster by weight.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from enum import IntEnum

from mesh.fault import FaultPolicy
from mesh.xds.http_filters import HttpFilter
from mesh.xds.route_config import ClusterWeight, Route, RouteAction, VirtualHost

Headers = Mapping[str, str | Sequence[str]]


class DomainMatch(IntEnum):
    """How a domain pattern matched; a lower value wins."""

    EXACT = 0
    SUFFIX = 1
    PREFIX = 2
    UNIVERSAL = 3


def domain_match(pattern: str, host: str) -> DomainMatch | None:
    pattern, host = pattern.lower(), host.lower()
    if pattern == "*":
        return DomainMatch.UNIVERSAL
    if "*" not in pattern:
        return DomainMatch.EXACT if pattern == host else None
    if pattern.count("*") > 1:
        return None  # invalid pattern: never matches
    if pattern.startswith("*"):
        # The wildcard must stand for at least one character.
        suffix = pattern[1:]
        return DomainMatch.SUFFIX if len(host) > len(suffix) and host.endswith(suffix) else None
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return DomainMatch.PREFIX if len(host) > len(prefix) and host.startswith(prefix) else None
    return None


def select_virtual_host(vhosts: Sequence[VirtualHost], host: str) -> VirtualHost | None:
    best: VirtualHost | None = None
    best_rank: tuple[int, int] | None = None
    for vhost in vhosts:
        for pattern in vhost.domains:
            kind = domain_match(pattern, host)
            if kind is None:
                continue
            rank = (int(kind), -len(pattern))
            if best_rank is None or rank < best_rank:
                best, best_rank = vhost, rank
    return best


def match_route(
    vhost: VirtualHost, path: str, headers: Headers, rng: random.Random
) -> Route | None:
    for route in vhost.routes:
        if not route.path.matches(path):
            continue
        if not all(m.matches(headers) for m in route.headers):
            continue
        if route.runtime_fraction is not None:
            numerator, denominator = route.runtime_fraction
            if rng.randrange(denominator) >= numerator:
                continue
        return route
    return None


def pick_cluster(action: RouteAction, rng: random.Random) -> ClusterWeight:
    clusters = action.clusters
    if len(clusters) == 1:
        return clusters[0]
    point = rng.randrange(action.total_weight)
    for entry in clusters:
        if point < entry.weight:
            return entry
        point -= entry.weight
    raise AssertionError("unreachable: point below the total weight")


def effective_fault(
    filters: Sequence[HttpFilter], vhost: VirtualHost, route: Route, cluster: ClusterWeight
) -> FaultPolicy | None:
    """The fault config in force: weighted cluster > route > virtual host > listener."""
    for http_filter in filters:
        if http_filter.fault is None:
            continue
        config: FaultPolicy | None = http_filter.fault
        for overrides in (cluster.filter_overrides, route.filter_overrides, vhost.filter_overrides):
            if http_filter.name in overrides:
                config = overrides[http_filter.name]
                break
        if config is not None:
            return config
    return None


def effective_timeout(route_seconds: float | None, listener_seconds: float | None) -> float | None:
    """gRFC A31: the route's max stream duration, else the listener's; 0 means none."""
    value = route_seconds if route_seconds is not None else listener_seconds
    return value or None
