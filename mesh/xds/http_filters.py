"""HTTP filters of an HttpConnectionManager, and their per-route overrides.

Only the fault filter changes what the mesh core reports; the router must be
last; a few other filters istiod sends are known and ignored client-side. An
unknown filter is an error unless the control plane marked it optional (the
rule gRPC applies, gRFC A39).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401 (registers the type for dumps)
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2

from mesh.errors import ResourceError
from mesh.fault import FaultPolicy, grpc_status_for_http
from mesh.xds.common import fraction, seconds, type_name, unpack
from mesh.xds.matchers import header_matcher

FAULT = "envoy.extensions.filters.http.fault.v3.HTTPFault"
ROUTER = "envoy.extensions.filters.http.router.v3.Router"
FILTER_CONFIG = "envoy.config.route.v3.FilterConfig"
# Filters a proxyless client knows but that change nothing for outbound routing.
IGNORED = frozenset(
    {
        "envoy.extensions.filters.http.rbac.v3.RBAC",
        "envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
        "envoy.extensions.filters.http.stateful_session.v3.StatefulSession",
        "envoy.extensions.filters.http.stateful_session.v3.StatefulSessionPerRoute",
        "envoy.extensions.filters.http.gcp_authn.v3.GcpAuthnFilterConfig",
    }
)


@dataclass(frozen=True, slots=True)
class HttpFilter:
    name: str
    type_name: str
    fault: FaultPolicy | None = None


# Per-route override of a filter instance, keyed by the filter's name.
# A value of None means "disabled for this route".
FilterOverrides = Mapping[str, FaultPolicy | None]


def http_filters(hcm: hcm_pb2.HttpConnectionManager) -> tuple[HttpFilter, ...]:
    filters: list[HttpFilter] = []
    seen: set[str] = set()
    for proto in hcm.http_filters:
        where = f"http filter {proto.name!r}"
        if proto.name in seen:
            raise ResourceError(f"{where}: duplicate filter name")
        seen.add(proto.name)
        if not proto.HasField("typed_config"):
            if proto.is_optional:
                continue
            raise ResourceError(f"{where}: no typed_config")
        kind = type_name(proto.typed_config)
        if kind == FAULT:
            fault = fault_policy(unpack(proto.typed_config, fault_pb2.HTTPFault, where), where)
            filters.append(HttpFilter(proto.name, kind, fault))
        elif kind == ROUTER or kind in IGNORED:
            filters.append(HttpFilter(proto.name, kind))
        elif not proto.is_optional:
            raise ResourceError(f"{where}: unsupported filter type {kind}")
    if not filters or filters[-1].type_name != ROUTER:
        raise ResourceError("http_filters: the last filter must be the router")
    if any(f.type_name == ROUTER for f in filters[:-1]):
        raise ResourceError("http_filters: the router must appear only last")
    return tuple(filters)


def fault_policy(proto: fault_pb2.HTTPFault, where: str) -> FaultPolicy:
    delay_s: float | None = None
    delay_from_header = False
    delay_fraction = (0, 100)
    if proto.HasField("delay"):
        kind = proto.delay.WhichOneof("fault_delay_secifier")
        if kind == "fixed_delay":
            delay_s = seconds(proto.delay.fixed_delay)
        elif kind == "header_delay":
            delay_from_header = True
        else:
            raise ResourceError(f"{where}: delay without fixed_delay or header_delay")
        delay_fraction = fraction(proto.delay.percentage)
    abort_code: int | None = None
    abort_from_header = False
    abort_fraction = (0, 100)
    if proto.HasField("abort"):
        kind = proto.abort.WhichOneof("error_type")
        if kind == "grpc_status":
            abort_code = proto.abort.grpc_status
        elif kind == "http_status":
            if not 200 <= proto.abort.http_status < 600:
                raise ResourceError(f"{where}: abort http_status {proto.abort.http_status}")
            abort_code = grpc_status_for_http(proto.abort.http_status)
        elif kind == "header_abort":
            abort_from_header = True
        else:
            raise ResourceError(f"{where}: abort without an error type")
        abort_fraction = fraction(proto.abort.percentage)
    return FaultPolicy(
        delay_s=delay_s,
        delay_from_header=delay_from_header,
        delay_fraction=delay_fraction,
        abort_code=abort_code,
        abort_from_header=abort_from_header,
        abort_fraction=abort_fraction,
        headers=tuple(header_matcher(h, where) for h in proto.headers),
        max_active_faults=(
            proto.max_active_faults.value if proto.HasField("max_active_faults") else None
        ),
    )


def filter_overrides(configs: Mapping[str, any_pb2.Any], where: str) -> FilterOverrides:
    """Translate ``typed_per_filter_config`` (of a vhost, route or weighted cluster)."""
    overrides: dict[str, FaultPolicy | None] = {}
    for name, packed in configs.items():
        here = f"{where} typed_per_filter_config {name!r}"
        optional = False
        kind = type_name(packed)
        if kind == FILTER_CONFIG:
            wrapper = unpack(packed, rc.FilterConfig, here)
            if wrapper.disabled:
                overrides[name] = None
                continue
            optional = wrapper.is_optional
            packed = wrapper.config
            kind = type_name(packed)
        if kind == FAULT:
            overrides[name] = fault_policy(unpack(packed, fault_pb2.HTTPFault, here), here)
        elif kind not in IGNORED and kind != ROUTER and not optional:
            raise ResourceError(f"{here}: unsupported filter override type {kind}")
    return overrides
