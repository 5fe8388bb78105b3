"""The v3 type URLs the mesh core speaks, and their short names."""

from __future__ import annotations

from typing import Final

_PREFIX: Final = "type.googleapis.com/"

LISTENER: Final = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE_CONFIGURATION: Final = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
CLUSTER: Final = _PREFIX + "envoy.config.cluster.v3.Cluster"
CLUSTER_LOAD_ASSIGNMENT: Final = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
RESOURCE_WRAPPER: Final = _PREFIX + "envoy.service.discovery.v3.Resource"

HCM: Final = (
    _PREFIX + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
FAULT_FILTER: Final = _PREFIX + "envoy.extensions.filters.http.fault.v3.HTTPFault"
ROUTER_FILTER: Final = _PREFIX + "envoy.extensions.filters.http.router.v3.Router"
TYPED_STRUCT_UDPA: Final = _PREFIX + "udpa.type.v1.TypedStruct"
TYPED_STRUCT_XDS: Final = _PREFIX + "xds.type.v3.TypedStruct"
FILTER_CONFIG: Final = _PREFIX + "envoy.config.route.v3.FilterConfig"

# Order matters: a client subscribes and reports types parent first.
ALL: Final = (LISTENER, ROUTE_CONFIGURATION, CLUSTER, CLUSTER_LOAD_ASSIGNMENT)

SHORT_NAMES: Final = {
    LISTENER: "lds",
    ROUTE_CONFIGURATION: "rds",
    CLUSTER: "cds",
    CLUSTER_LOAD_ASSIGNMENT: "eds",
}

# State of the world: a response for these types lists every subscribed
# resource, so absence means deletion. RDS and EDS responses need not.
ABSENCE_MEANS_DELETION: Final = frozenset({LISTENER, CLUSTER})
