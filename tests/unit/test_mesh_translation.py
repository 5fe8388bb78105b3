"""xDS resources -> mesh dataclasses, and the errors that become NACKs."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2

from mesh.errors import ResourceError
from mesh.xds import type_urls as t
from mesh.xds.cluster import cluster
from mesh.xds.decode import decode
from mesh.xds.endpoints import load_assignment
from mesh.xds.listener import listener
from mesh.xds.regex import compile_re2
from mesh.xds.route_config import route_config
from tests.support import xds_builders as b

HOST, PORT = "shop.default.svc.cluster.local", 50051
TARGET = f"{HOST}:{PORT}"
V1 = b.cluster_name(HOST, PORT, "v1")


def test_listener_with_rds_and_fault_filter() -> None:
    result = listener(b.listener(TARGET, fault=b.abort(14, 50), max_stream_duration=3))
    assert result.hcm is not None and result.hcm.rds_name == TARGET
    assert result.hcm.max_stream_duration_s == 3
    fault = result.hcm.http_filters[0].fault
    assert fault is not None and fault.abort_code == 14 and fault.abort_fraction == (50, 100)
    assert result.references() == (TARGET,)


def test_listener_with_inline_route_config() -> None:
    inline = b.route_config("inline", HOST, PORT, [b.route(cluster=V1)])
    result = listener(b.listener(TARGET, route_config=inline))
    assert result.hcm is not None and result.hcm.inline_route_config is not None
    assert result.hcm.inline_route_config.references() == (V1,)


def test_router_must_be_last_and_unknown_filters_need_is_optional() -> None:
    router = b.http_filters()[1]
    with pytest.raises(ResourceError, match="last filter must be the router"):
        listener(b.listener(TARGET, filters=[router, b.http_filters()[0]]))
    unknown = hcm_pb2.HttpFilter(
        name="x", typed_config=any_pb2.Any(type_url="type.googleapis.com/x.Y")
    )
    with pytest.raises(ResourceError, match=r"unsupported filter type x\.Y"):
        listener(b.listener(TARGET, filters=[unknown, router]))
    unknown.is_optional = True
    assert listener(b.listener(TARGET, filters=[unknown, router])).hcm is not None


def test_server_listener_has_no_hcm() -> None:
    from envoy.config.listener.v3 import listener_pb2

    assert (
        listener(listener_pb2.Listener(name="xds.istio.io/grpc/lds/inbound/0.0.0.0:1")).hcm is None
    )


def test_routes_paths_headers_and_skips() -> None:
    query = b.route(cluster=V1)
    query.match.query_parameters.add(name="q")
    config = route_config(
        b.route_config(
            TARGET,
            HOST,
            PORT,
            [
                query,
                b.route(path="/a.B/C", cluster=V1, headers=[b.header("x-v", regex="v[0-9]+")]),
                b.route(prefix="/A.", cluster=V1),
            ],
        )
    )
    [vhost] = config.virtual_hosts
    assert len(vhost.routes) == 2  # the query-parameter route is skipped, as gRPC does
    exact, prefix = vhost.routes
    assert exact.path.matches("/a.B/C") and not exact.path.matches("/a.B/Cx")
    assert exact.headers[0].matches({"x-v": "v12"}) and not exact.headers[0].matches({"x-v": "w"})
    assert prefix.path.matches("/A.x") and not prefix.path.matches("/a.x")


def test_case_insensitive_prefix() -> None:
    route = b.route(prefix="/Shop.", cluster=V1)
    route.match.case_sensitive.value = False
    [vhost] = route_config(b.route_config(TARGET, HOST, PORT, [route])).virtual_hosts
    assert vhost.routes[0].path.matches("/shop.Cart/Get")


@pytest.mark.parametrize(
    "pattern", ["(a)\\1", "(?=x)y", "a(?!b)", "(?<=a)b", "a*+", "(?>a)", "\\Z"]
)
def test_re2_incompatible_regex_is_rejected(pattern: str) -> None:
    with pytest.raises(ResourceError, match="RE2"):
        compile_re2(pattern)


def test_re2_regex_compiles_and_full_matches() -> None:
    regex = compile_re2("/shop\\.v[0-9]+\\..*\\z")
    assert regex.fullmatch("/shop.v1.Cart/Get")
    assert compile_re2("[+]+").fullmatch("++")
    with pytest.raises(ResourceError, match="invalid regex"):
        compile_re2("(unclosed")


def test_invalid_regex_in_route_names_the_resource() -> None:
    config = b.route_config(TARGET, HOST, PORT, [b.route(regex="/(a)\\1", cluster=V1)])
    with pytest.raises(ResourceError) as caught:
        decode(t.ROUTE_CONFIGURATION, b.packed(config))
    assert caught.value.name == TARGET and "RE2" in caught.value.problem


def test_header_matcher_kinds() -> None:
    def matcher(**fields: object) -> rc.HeaderMatcher:
        return rc.HeaderMatcher(name="x-h", **fields)  # type: ignore[arg-type]

    from mesh.xds.matchers import header_matcher

    def check(proto: rc.HeaderMatcher, headers: dict[str, str]) -> bool:
        return header_matcher(proto, "test").matches(headers)

    assert check(matcher(present_match=True), {"x-h": ""})
    assert not check(matcher(present_match=True), {})
    assert check(matcher(present_match=True, invert_match=True), {})
    ranged = matcher()
    ranged.range_match.start, ranged.range_match.end = 10, 20
    assert check(ranged, {"x-h": "10"}) and not check(ranged, {"x-h": "20"})
    assert not check(ranged, {"x-h": "ten"})
    suffix = matcher()
    suffix.string_match.suffix = "-canary"
    assert check(suffix, {"x-h": "v2-canary"})
    contains = matcher()
    contains.string_match.contains = "EU"
    contains.string_match.ignore_case = True
    assert check(contains, {"x-h": "west-eu-1"})
    binary = rc.HeaderMatcher(name="x-trace-bin", present_match=True)
    assert not check(binary, {"x-trace-bin": "AAA="})  # -bin headers never match (gRFC A28)
    assert check(rc.HeaderMatcher(name="content-type", prefix_match="application/grpc"), {})
    joined = matcher(exact_match="a,b")
    assert header_matcher(joined, "t").matches({"x-h": ["a", "b"]})


def test_weighted_clusters_and_total() -> None:
    config = route_config(
        b.route_config(TARGET, HOST, PORT, [b.route(weights={V1: 80, "other": 20})])
    )
    action = config.virtual_hosts[0].routes[0].action
    assert action is not None and action.total_weight == 100
    with pytest.raises(ResourceError, match="total weight of 0"):
        route_config(b.route_config(TARGET, HOST, PORT, [b.route(weights={V1: 0})]))


def test_timeout_prefers_grpc_timeout_header_max() -> None:
    route = b.route(cluster=V1, timeout=5)
    route.route.max_stream_duration.grpc_timeout_header_max.seconds = 2
    action = (
        route_config(b.route_config(TARGET, HOST, PORT, [route])).virtual_hosts[0].routes[0].action
    )
    assert action is not None and action.max_stream_duration_s == 2


def test_retry_policy_per_grfc_a44() -> None:
    route = b.route(cluster=V1, retry_on="unavailable,5xx,cancelled", num_retries=3)
    route.route.retry_policy.retry_back_off.base_interval.nanos = 100_000_000
    route.route.retry_policy.per_try_timeout.seconds = 1
    action = (
        route_config(b.route_config(TARGET, HOST, PORT, [route])).virtual_hosts[0].routes[0].action
    )
    assert action is not None and action.retry_policy is not None
    policy = action.retry_policy
    assert policy.retry_on == frozenset({14, 1}) and policy.max_attempts == 4
    assert (policy.backoff_base_s, policy.backoff_max_s, policy.per_try_timeout_s) == (0.1, 1.0, 1)
    route.route.retry_policy.num_retries.value = 9
    capped = route_config(b.route_config(TARGET, HOST, PORT, [route])).virtual_hosts[0].routes[0]
    assert capped.action is not None and capped.action.retry_policy is not None
    assert capped.action.retry_policy.max_attempts == 5  # gRPC caps attempts at 5
    route.route.retry_policy.retry_back_off.base_interval.nanos = 0
    with pytest.raises(ResourceError, match="base_interval"):
        route_config(b.route_config(TARGET, HOST, PORT, [route]))


def test_vhost_retry_policy_applies_unless_the_route_has_one() -> None:
    config = b.route_config(TARGET, HOST, PORT, [b.route(cluster=V1)])
    config.virtual_hosts[0].retry_policy.retry_on = "internal"
    action = route_config(config).virtual_hosts[0].routes[0].action
    assert action is not None and action.retry_policy is not None
    assert action.retry_policy.retry_on == frozenset({13})


def test_per_route_fault_override_and_disable() -> None:
    route = b.route(cluster=V1, fault=b.delay(0.5, 25))
    disabled = b.route(prefix="/x", cluster=V1)
    wrapper = rc.FilterConfig(disabled=True)
    disabled.typed_per_filter_config[b.FAULT_FILTER_NAME].CopyFrom(b.packed(wrapper))
    [vhost] = route_config(b.route_config(TARGET, HOST, PORT, [route, disabled])).virtual_hosts
    fault = vhost.routes[0].filter_overrides[b.FAULT_FILTER_NAME]
    assert fault is not None and fault.delay_s == 0.5 and fault.delay_fraction == (25, 100)
    assert vhost.routes[1].filter_overrides[b.FAULT_FILTER_NAME] is None


def test_fault_http_status_maps_to_grpc() -> None:
    fault = fault_pb2.HTTPFault()
    fault.abort.http_status = 503
    fault.abort.percentage.numerator = 100
    result = listener(b.listener(TARGET, fault=fault))
    assert result.hcm is not None and result.hcm.http_filters[0].fault is not None
    assert result.hcm.http_filters[0].fault.abort_code == 14


def test_cluster_policies_and_circuit_breaker() -> None:
    result = cluster(b.cluster(V1, lb_policy="LEAST_REQUEST", max_requests=7))
    assert (result.lb_policy, result.max_requests, result.eds_service_name) == (
        "least_request",
        7,
        V1,
    )
    assert cluster(b.cluster(V1)).max_requests == 1024
    assert cluster(b.cluster(V1, lb_policy="MAGLEV")).lb_policy == "maglev"
    with pytest.raises(ResourceError, match="CLUSTER_PROVIDED"):
        cluster(b.cluster(V1, lb_policy="CLUSTER_PROVIDED"))
    static = b.cluster(V1)
    static.type = cluster_pb2.Cluster.STATIC
    with pytest.raises(ResourceError, match="only EDS"):
        cluster(static)


def test_outlier_detection_is_kept() -> None:
    proto = b.cluster(V1)
    proto.outlier_detection.consecutive_5xx.value = 3
    proto.outlier_detection.base_ejection_time.seconds = 60
    result = cluster(proto)
    assert result.outlier_detection is not None
    assert (
        result.outlier_detection.consecutive_5xx,
        result.outlier_detection.base_ejection_time_s,
    ) == (3, 60)


def test_endpoints_with_localities_priorities_and_health() -> None:
    proto = b.endpoints(
        V1,
        [
            b.Locality(
                [("10.0.0.1", 80), ("10.0.0.2", 80)],
                zone="a",
                endpoint_weights=[3, 1],
                unhealthy=[1],
            ),
            b.Locality([("10.0.0.3", 80)], zone="b", priority=1),
        ],
    )
    result = load_assignment(proto)
    assert result.priorities == 2
    first, second = result.localities
    assert (first.locality, first.weight, first.priority) == ("region/a/", 4, 0)
    assert [e.weight for e in first.endpoints] == [3, 1]
    assert [e.health.routable for e in first.endpoints] == [True, False]
    assert second.endpoints[0].address == "10.0.0.3:80"


def test_endpoints_validation() -> None:
    gap = b.endpoints(V1, [b.Locality([("10.0.0.1", 80)], priority=1)])
    with pytest.raises(ResourceError, match="contiguous"):
        load_assignment(gap)
    duplicate = b.endpoints(V1, [b.Locality([("10.0.0.1", 80), ("10.0.0.1", 80)])])
    with pytest.raises(ResourceError, match="duplicate endpoint"):
        load_assignment(duplicate)
    weightless = b.endpoints(V1, [b.Locality([("10.0.0.1", 80)], weight=0)])
    assert load_assignment(weightless).localities == ()


def test_cluster_resilience_fields_are_translated() -> None:
    from envoy.config.core.v3 import health_check_pb2

    proto = b.cluster(V1)
    od = proto.outlier_detection
    od.consecutive_gateway_failure.value = 4
    od.enforcing_consecutive_gateway_failure.value = 100
    od.failure_percentage_threshold.value = 60
    od.enforcing_failure_percentage.value = 100
    od.max_ejection_time.seconds = 90
    check = proto.health_checks.add()
    check.interval.seconds = 2
    check.timeout.nanos = 500_000_000
    check.interval_jitter.nanos = 100_000_000
    check.unhealthy_threshold.value = 2
    check.healthy_threshold.value = 1
    check.grpc_health_check.service_name = "shop"
    threshold = proto.circuit_breakers.thresholds.add()
    threshold.max_retries.value = 7
    threshold.retry_budget.budget_percent.value = 30.0
    proto.common_lb_config.healthy_panic_threshold.value = 20.0
    result = cluster(proto)
    assert result.outlier_detection is not None
    outlier = result.outlier_detection
    assert outlier.consecutive_5xx == 5  # Envoy's default when unset
    assert (outlier.consecutive_gateway_failure, outlier.enforcing_consecutive_gateway_failure) == (
        4,
        100,
    )
    assert (outlier.failure_percentage_threshold, outlier.max_ejection_time_s) == (60, 90.0)
    assert result.health_check is not None
    assert (result.health_check.kind, result.health_check.grpc_service) == ("grpc", "shop")
    assert (result.health_check.interval_s, result.health_check.timeout_s) == (2.0, 0.5)
    assert result.max_retries == 7
    assert result.retry_budget is not None and result.retry_budget.budget_percent == 30.0
    assert result.retry_budget.min_retry_concurrency == 3
    assert result.panic_threshold == 20.0
    http = b.cluster(V1)
    http_check = http.health_checks.add(
        http_health_check=health_check_pb2.HealthCheck.HttpHealthCheck(path="/healthz")
    )
    with pytest.raises(ResourceError, match="interval and timeout"):
        cluster(http)
    http_check.interval.seconds = 1
    http_check.timeout.seconds = 1
    parsed = cluster(http).health_check
    assert parsed is not None and (parsed.kind, parsed.http_path) == ("http", "/healthz")
    # Envoy's default: 200 alone passes.
    assert [parsed.http_passes(s) for s in (200, 204, 503)] == [True, False, False]
    http_check.http_health_check.expected_statuses.add(start=200, end=300)
    http_check.http_health_check.expected_statuses.add(start=429, end=430)
    ranged = cluster(http).health_check
    assert ranged is not None
    assert [ranged.http_passes(s) for s in (200, 204, 429, 300, 503)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    http_check.http_health_check.expected_statuses.add(start=300, end=200)
    with pytest.raises(ResourceError, match="expected_statuses"):
        cluster(http)


def test_http2_keepalive_is_read_from_either_place() -> None:
    from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

    assert cluster(b.cluster(V1)).keepalive is None
    deprecated = b.cluster(V1)
    deprecated.http2_protocol_options.connection_keepalive.interval.seconds = 20
    assert cluster(deprecated).keepalive == (20.0, 15.0)  # Envoy's default timeout
    options = http_protocol_options_pb2.HttpProtocolOptions()
    ping = options.explicit_http_config.http2_protocol_options.connection_keepalive
    ping.interval.seconds = 5
    ping.timeout.nanos = 250_000_000
    typed = b.cluster(V1)
    typed.typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ].Pack(options)
    assert cluster(typed).keepalive == (5.0, 0.25)
    ping.ClearField("interval")
    typed.typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ].Pack(options)
    assert cluster(typed).keepalive is None  # no interval: no PINGs, as Envoy
