"""A route as the router uses it: compiled from the YAML or made by an exposure."""

from __future__ import annotations

from dataclasses import dataclass

from filters.http import Filter
from gateway.route_table import CompiledMatch
from gateway.transcode.route_kind import RouteKind
from gateway.upstream.clusters import ClusterRef
from gateway.upstream.registry import UpstreamName


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    name: str
    match: CompiledMatch
    kind: RouteKind
    cluster: ClusterRef
    upstream: UpstreamName
    timeout: float | None
    # The route's filter chain: the listener's, changed by routes[].filters.
    filter_names: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
