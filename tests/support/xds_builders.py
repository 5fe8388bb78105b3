"""Terse builders of Istio-shaped xDS resources for the tests' ADS server.

Names follow istiod's proxyless-gRPC generator: listener and route config
``HOST:PORT``, clusters ``outbound|PORT|SUBSET|HOST``, one virtual host whose
domains are the service's FQDN and short forms, each with and without port.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

FAULT_FILTER_NAME = "envoy.filters.http.fault"


def packed(message: Message) -> any_pb2.Any:
    value = any_pb2.Any()
    value.Pack(message)
    return value


def duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def cluster_name(host: str, port: int, subset: str = "") -> str:
    return f"outbound|{port}|{subset}|{host}"


def domains(host: str, port: int) -> list[str]:
    """istiod's domains for a service: FQDN and its shortenings, with and without port."""
    parts = host.split(".")
    names = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
    return [f"{n}:{port}" for n in names] + names


def http_filters(fault: fault_pb2.HTTPFault | None = None) -> list[hcm_pb2.HttpFilter]:
    return [
        hcm_pb2.HttpFilter(
            name=FAULT_FILTER_NAME, typed_config=packed(fault or fault_pb2.HTTPFault())
        ),
        hcm_pb2.HttpFilter(
            name="envoy.filters.http.router", typed_config=packed(router_pb2.Router())
        ),
    ]


def listener(
    name: str,
    *,
    rds: str | None = None,
    route_config: route_pb2.RouteConfiguration | None = None,
    fault: fault_pb2.HTTPFault | None = None,
    max_stream_duration: float | None = None,
    filters: Sequence[hcm_pb2.HttpFilter] | None = None,
) -> listener_pb2.Listener:
    hcm = hcm_pb2.HttpConnectionManager(
        http_filters=list(filters) if filters is not None else http_filters(fault)
    )
    if route_config is not None:
        hcm.route_config.CopyFrom(route_config)
    else:
        hcm.rds.route_config_name = rds or name
        hcm.rds.config_source.CopyFrom(
            config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource())
        )
    if max_stream_duration is not None:
        hcm.common_http_protocol_options.max_stream_duration.CopyFrom(duration(max_stream_duration))
    return listener_pb2.Listener(
        name=name, api_listener=api_listener_pb2.ApiListener(api_listener=packed(hcm))
    )


def abort(grpc_status: int, percent: int = 100) -> fault_pb2.HTTPFault:
    return fault_pb2.HTTPFault(
        abort=fault_pb2.FaultAbort(
            grpc_status=grpc_status,
            percentage=percent_pb2.FractionalPercent(numerator=percent),
        )
    )


def delay(seconds: float, percent: int = 100) -> fault_pb2.HTTPFault:
    fault = fault_pb2.HTTPFault()
    fault.delay.fixed_delay.CopyFrom(duration(seconds))
    fault.delay.percentage.numerator = percent
    return fault


def header(
    name: str,
    *,
    exact: str | None = None,
    regex: str | None = None,
    prefix: str | None = None,
    present: bool | None = None,
    invert: bool = False,
) -> rc.HeaderMatcher:
    matcher = rc.HeaderMatcher(name=name, invert_match=invert)
    if exact is not None:
        matcher.string_match.CopyFrom(string_pb2.StringMatcher(exact=exact))
    elif prefix is not None:
        matcher.string_match.CopyFrom(string_pb2.StringMatcher(prefix=prefix))
    elif regex is not None:
        matcher.string_match.CopyFrom(
            string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=regex))
        )
    elif present is not None:
        matcher.present_match = present
    return matcher


def route(
    *,
    name: str = "",
    prefix: str | None = "/",
    path: str | None = None,
    regex: str | None = None,
    headers: Iterable[rc.HeaderMatcher] = (),
    cluster: str | None = None,
    weights: dict[str, int] | None = None,
    timeout: float | None = None,
    retry_on: str | None = None,
    num_retries: int | None = None,
    fault: fault_pb2.HTTPFault | None = None,
) -> rc.Route:
    match = rc.RouteMatch(headers=list(headers))
    if path is not None:
        match.path = path
    elif regex is not None:
        match.safe_regex.regex = regex
    else:
        match.prefix = prefix or "/"
    action = rc.RouteAction()
    if weights is not None:
        for cluster_name_, weight in weights.items():
            action.weighted_clusters.clusters.add(
                name=cluster_name_, weight=wrappers_pb2.UInt32Value(value=weight)
            )
    else:
        action.cluster = cluster or ""
    if timeout is not None:
        action.max_stream_duration.max_stream_duration.CopyFrom(duration(timeout))
    if retry_on is not None:
        action.retry_policy.retry_on = retry_on
        if num_retries is not None:
            action.retry_policy.num_retries.value = num_retries
    result = rc.Route(name=name, match=match, route=action)
    if fault is not None:
        result.typed_per_filter_config[FAULT_FILTER_NAME].CopyFrom(packed(fault))
    return result


def route_config(
    name: str, host: str, port: int, routes: Sequence[rc.Route]
) -> route_pb2.RouteConfiguration:
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[
            rc.VirtualHost(name=f"{host}:{port}", domains=domains(host, port), routes=list(routes))
        ],
    )


def istio_mutual(
    subject_alt_names: Sequence[str] = (), instance: str = "default"
) -> base_pb2.TransportSocket:
    """The transport socket istiod sends a proxyless client for ISTIO_MUTUAL.

    As dumped from the istiod of tests/istio (DestinationRule tls.mode
    ISTIO_MUTUAL): the current and the legacy provider-instance fields side by
    side, identity ``default``/``default`` and roots ``default``/``ROOTCA``;
    istiod adds exact SAN matchers from the service accounts it knows.
    """
    identity = common_pb2.CertificateProviderPluginInstance(
        instance_name=instance, certificate_name="default"
    )
    roots = common_pb2.CertificateProviderPluginInstance(
        instance_name=instance, certificate_name="ROOTCA"
    )
    legacy_identity = tls_pb2.CommonTlsContext.CertificateProviderInstance(
        instance_name=instance, certificate_name="default"
    )
    legacy_roots = tls_pb2.CommonTlsContext.CertificateProviderInstance(
        instance_name=instance, certificate_name="ROOTCA"
    )
    validation = common_pb2.CertificateValidationContext(
        ca_certificate_provider_instance=roots,
        match_subject_alt_names=[string_pb2.StringMatcher(exact=s) for s in subject_alt_names],
    )
    context = tls_pb2.UpstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_certificate_provider_instance=identity,
            tls_certificate_certificate_provider_instance=legacy_identity,
            combined_validation_context=tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
                default_validation_context=validation,
                validation_context_certificate_provider_instance=legacy_roots,
            ),
        )
    )
    return base_pb2.TransportSocket(
        name="envoy.transport_sockets.tls", typed_config=packed(context)
    )


def cluster(
    name: str,
    *,
    lb_policy: str = "ROUND_ROBIN",
    max_requests: int | None = None,
    transport_socket: base_pb2.TransportSocket | None = None,
) -> cluster_pb2.Cluster:
    result = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        lb_policy=cluster_pb2.Cluster.LbPolicy.Value(lb_policy),
    )
    if transport_socket is not None:
        result.transport_socket.CopyFrom(transport_socket)
    result.eds_cluster_config.service_name = name
    result.eds_cluster_config.eds_config.ads.SetInParent()
    if max_requests is not None:
        result.circuit_breakers.thresholds.add(
            max_requests=wrappers_pb2.UInt32Value(value=max_requests)
        )
    return result


@dataclass
class Locality:
    endpoints: Sequence[tuple[str, int]]
    zone: str = "zone-a"
    weight: int | None = None  # default: sum of endpoint weights, as istiod does
    priority: int = 0
    endpoint_weights: Sequence[int] = field(default_factory=list)
    unhealthy: Sequence[int] = field(default_factory=list)  # indexes


def endpoints(name: str, localities: Sequence[Locality]) -> endpoint_pb2.ClusterLoadAssignment:
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    for locality in localities:
        group = assignment.endpoints.add(
            locality=base_pb2.Locality(region="region", zone=locality.zone),
            priority=locality.priority,
        )
        weights = list(locality.endpoint_weights) or [1] * len(locality.endpoints)
        for index, (host, port) in enumerate(locality.endpoints):
            health = (
                health_check_pb2.UNHEALTHY
                if index in locality.unhealthy
                else health_check_pb2.HEALTHY
            )
            group.lb_endpoints.add(
                endpoint=endpoint_components_pb2.Endpoint(
                    address=address_pb2.Address(
                        socket_address=address_pb2.SocketAddress(address=host, port_value=port)
                    )
                ),
                health_status=health,
                load_balancing_weight=wrappers_pb2.UInt32Value(value=weights[index]),
            )
        group.load_balancing_weight.value = (
            locality.weight if locality.weight is not None else sum(weights)
        )
    return assignment


ECHO_METHOD = "/meshgate.test.v1.EchoService/Echo"


@dataclass
class Service:
    """An Istio-shaped service: listener + route config ``HOST:PORT``, one cluster per subset."""

    host: str
    port: int
    subsets: dict[str, Sequence[tuple[str, int]]]

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def cluster(self, subset: str) -> str:
        return cluster_name(self.host, self.port, subset)

    def listener(self, **options: Any) -> listener_pb2.Listener:
        return listener(self.target, **options)

    def route_config(self, *routes: rc.Route) -> route_pb2.RouteConfiguration:
        return route_config(self.target, self.host, self.port, routes)

    def clusters(self, **options: Any) -> list[cluster_pb2.Cluster]:
        return [cluster(self.cluster(s), **options) for s in self.subsets]

    def endpoints(self) -> list[endpoint_pb2.ClusterLoadAssignment]:
        return [
            endpoints(self.cluster(s), [Locality(list(addresses))])
            for s, addresses in self.subsets.items()
        ]
