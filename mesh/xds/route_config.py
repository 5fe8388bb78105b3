"""RouteConfiguration -> virtual hosts -> routes, as gRPC validates them (gRFC A28)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from mesh.errors import ResourceError
from mesh.hashing import HashOn, HashPolicy
from mesh.regex import Pattern
from mesh.retry import MAX_ATTEMPTS_CAP, RETRY_ON_CAUSES, RETRY_ON_CODES, RetryPolicy
from mesh.xds.common import fraction, seconds
from mesh.xds.http_filters import FilterOverrides, filter_overrides
from mesh.xds.matchers import HeaderMatcher, header_matcher
from mesh.xds.regex import compile_re2

MAX_TOTAL_WEIGHT = 0xFFFFFFFF


class PathMatchKind(Enum):
    PREFIX = "prefix"
    PATH = "path"
    REGEX = "safe_regex"


@dataclass(frozen=True, slots=True)
class PathMatcher:
    kind: PathMatchKind
    value: str = ""
    regex: Pattern | None = None
    case_sensitive: bool = True

    def matches(self, path: str) -> bool:
        if self.kind is PathMatchKind.REGEX:
            assert self.regex is not None
            return self.regex.fullmatch(path) is not None
        value = self.value
        if not self.case_sensitive:
            path, value = path.lower(), value.lower()
        if self.kind is PathMatchKind.PREFIX:
            return path.startswith(value)
        return path == value


@dataclass(frozen=True, slots=True)
class ClusterWeight:
    name: str
    weight: int
    filter_overrides: FilterOverrides


@dataclass(frozen=True, slots=True)
class RouteAction:
    clusters: tuple[ClusterWeight, ...]
    # None: not set on the route, the HCM's max_stream_duration applies.
    max_stream_duration_s: float | None
    retry_policy: RetryPolicy | None
    hash_policies: tuple[HashPolicy, ...]

    @property
    def total_weight(self) -> int:
        return sum(c.weight for c in self.clusters)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    path: PathMatcher
    headers: tuple[HeaderMatcher, ...]
    runtime_fraction: tuple[int, int] | None
    # None: a non-forwarding action (redirect, direct response...) that fails RPCs.
    action: RouteAction | None
    filter_overrides: FilterOverrides


@dataclass(frozen=True, slots=True)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]
    filter_overrides: FilterOverrides


@dataclass(frozen=True, slots=True)
class RouteConfig:
    name: str
    virtual_hosts: tuple[VirtualHost, ...]

    def references(self) -> tuple[str, ...]:
        """Every cluster a route of this config can send to, in first-seen order."""
        names: dict[str, None] = {}
        for vhost in self.virtual_hosts:
            for route in vhost.routes:
                if route.action is not None:
                    names.update((c.name, None) for c in route.action.clusters)
        return tuple(names)


def route_config(proto: route_pb2.RouteConfiguration) -> RouteConfig:
    if proto.cluster_specifier_plugins:
        raise ResourceError("cluster_specifier_plugins are not supported")
    return RouteConfig(
        name=proto.name,
        virtual_hosts=tuple(_virtual_host(v) for v in proto.virtual_hosts),
    )


def _virtual_host(proto: rc.VirtualHost) -> VirtualHost:
    where = f"virtual host {proto.name!r}"
    if not proto.domains:
        raise ResourceError(f"{where}: no domains")
    vhost_retry = (
        _retry_policy(proto.retry_policy, where) if proto.HasField("retry_policy") else None
    )
    routes = []
    for index, route_proto in enumerate(proto.routes):
        route = _route(route_proto, f"{where} route {route_proto.name or index}", vhost_retry)
        if route is not None:
            routes.append(route)
    return VirtualHost(
        name=proto.name,
        domains=tuple(d.lower() for d in proto.domains),
        routes=tuple(routes),
        filter_overrides=filter_overrides(proto.typed_per_filter_config, where),
    )


def _route(proto: rc.Route, where: str, vhost_retry: RetryPolicy | None) -> Route | None:
    """The translated route, or None for a route gRPC ignores."""
    match = proto.match
    if match.query_parameters:
        return None
    path = _path_matcher(match, where)
    if path is None:
        return None
    runtime_fraction = None
    if match.HasField("runtime_fraction"):
        runtime_fraction = fraction(match.runtime_fraction.default_value)
    action: RouteAction | None = None
    if proto.WhichOneof("action") == "route":
        action = _route_action(proto.route, where, vhost_retry)
        if action is None:
            return None
    return Route(
        name=proto.name,
        path=path,
        headers=tuple(header_matcher(h, where) for h in match.headers),
        runtime_fraction=runtime_fraction,
        action=action,
        filter_overrides=filter_overrides(proto.typed_per_filter_config, where),
    )


def _path_matcher(match: rc.RouteMatch, where: str) -> PathMatcher | None:
    kind = match.WhichOneof("path_specifier")
    case_sensitive = match.case_sensitive.value if match.HasField("case_sensitive") else True
    if kind == "prefix":
        return PathMatcher(PathMatchKind.PREFIX, match.prefix, case_sensitive=case_sensitive)
    if kind == "path":
        return PathMatcher(PathMatchKind.PATH, match.path, case_sensitive=case_sensitive)
    if kind == "safe_regex":
        try:
            regex = compile_re2(match.safe_regex.regex)
        except ResourceError as exc:
            raise ResourceError(f"{where}: {exc.problem}") from exc
        return PathMatcher(PathMatchKind.REGEX, regex=regex)
    if kind is None:
        raise ResourceError(f"{where}: match has no path specifier")
    return None  # connect_matcher, path_match_policy...: gRPC ignores such routes


def _route_action(
    proto: rc.RouteAction, where: str, vhost_retry: RetryPolicy | None
) -> RouteAction | None:
    kind = proto.WhichOneof("cluster_specifier")
    if kind == "cluster":
        if not proto.cluster:
            raise ResourceError(f"{where}: empty cluster name")
        clusters: tuple[ClusterWeight, ...] = (ClusterWeight(proto.cluster, 1, {}),)
    elif kind == "weighted_clusters":
        clusters = _weighted_clusters(proto.weighted_clusters, where)
    else:
        return None  # cluster_header and plugins: the route is ignored, as gRPC does
    retry = vhost_retry
    if proto.HasField("retry_policy"):
        retry = _retry_policy(proto.retry_policy, where)
    return RouteAction(
        clusters=clusters,
        max_stream_duration_s=_max_stream_duration(proto),
        retry_policy=retry,
        hash_policies=_hash_policies(proto),
    )


def _weighted_clusters(proto: rc.WeightedCluster, where: str) -> tuple[ClusterWeight, ...]:
    clusters = []
    for entry in proto.clusters:
        if not entry.name:
            raise ResourceError(f"{where}: weighted cluster without a name")
        weight = entry.weight.value
        if weight == 0:
            continue  # never picked; gRPC drops it
        clusters.append(
            ClusterWeight(
                entry.name,
                weight,
                filter_overrides(entry.typed_per_filter_config, f"{where} cluster {entry.name!r}"),
            )
        )
    total = sum(c.weight for c in clusters)
    if total == 0:
        raise ResourceError(f"{where}: weighted clusters have a total weight of 0")
    if total > MAX_TOTAL_WEIGHT:
        raise ResourceError(f"{where}: weighted clusters total weight {total} exceeds uint32")
    return tuple(clusters)


def _max_stream_duration(proto: rc.RouteAction) -> float | None:
    # gRFC A31: grpc_timeout_header_max wins over max_stream_duration; 0 = no limit.
    if not proto.HasField("max_stream_duration"):
        return None
    msd = proto.max_stream_duration
    if msd.HasField("grpc_timeout_header_max"):
        return seconds(msd.grpc_timeout_header_max)
    if msd.HasField("max_stream_duration"):
        return seconds(msd.max_stream_duration)
    return None


def _retry_policy(proto: rc.RetryPolicy, where: str) -> RetryPolicy | None:
    codes = frozenset(
        RETRY_ON_CODES[name.strip()]
        for name in proto.retry_on.split(",")
        if name.strip() in RETRY_ON_CODES
    )
    causes = frozenset(
        RETRY_ON_CAUSES[name.strip()]
        for name in proto.retry_on.split(",")
        if name.strip() in RETRY_ON_CAUSES
    )
    if not codes and not causes:
        return None
    num_retries = proto.num_retries.value if proto.HasField("num_retries") else 1
    base, maximum = 0.025, 0.25
    if proto.HasField("retry_back_off"):
        backoff = proto.retry_back_off
        if not backoff.HasField("base_interval"):
            raise ResourceError(f"{where}: retry_back_off without base_interval")
        base = seconds(backoff.base_interval)
        if base == 0:
            raise ResourceError(f"{where}: retry_back_off base_interval must be > 0")
        maximum = seconds(backoff.max_interval) if backoff.HasField("max_interval") else base * 10
        if maximum < base:
            raise ResourceError(f"{where}: retry_back_off max_interval is below base_interval")
    per_try = seconds(proto.per_try_timeout) if proto.HasField("per_try_timeout") else None
    return RetryPolicy(
        retry_on=codes,
        retry_on_causes=causes,
        # gRPC never makes more attempts than this, whatever xDS says.
        max_attempts=min(num_retries + 1, MAX_ATTEMPTS_CAP),
        per_try_timeout_s=per_try or None,
        backoff_base_s=base,
        backoff_max_s=maximum,
    )


def _hash_policies(proto: rc.RouteAction) -> tuple[HashPolicy, ...]:
    policies = []
    for policy in proto.hash_policy:
        kind = policy.WhichOneof("policy_specifier")
        if kind == "header":
            policies.append(
                HashPolicy(HashOn.HEADER, policy.header.header_name.lower(), policy.terminal)
            )
        elif kind == "cookie":
            policies.append(HashPolicy(HashOn.COOKIE, policy.cookie.name, policy.terminal))
        elif kind == "connection_properties" and policy.connection_properties.source_ip:
            policies.append(HashPolicy(HashOn.SOURCE_IP, "", policy.terminal))
        elif kind == "query_parameter":
            policies.append(
                HashPolicy(HashOn.QUERY_PARAMETER, policy.query_parameter.name, policy.terminal)
            )
        elif kind == "filter_state" and policy.filter_state.key == "io.grpc.channel_id":
            policies.append(HashPolicy(HashOn.CHANNEL, "", policy.terminal))
    return tuple(policies)
