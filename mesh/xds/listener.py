"""Listener -> the HttpConnectionManager a client-side (API) listener carries."""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from mesh.errors import ResourceError
from mesh.xds.common import seconds, type_name, unpack
from mesh.xds.http_filters import HttpFilter, http_filters
from mesh.xds.route_config import RouteConfig, route_config

HCM = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


@dataclass(frozen=True, slots=True)
class HttpConnectionManager:
    # Exactly one of the two is set.
    rds_name: str | None
    inline_route_config: RouteConfig | None
    http_filters: tuple[HttpFilter, ...]
    max_stream_duration_s: float | None


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    # None for a server-side listener (address + filter chains), which a client ignores.
    hcm: HttpConnectionManager | None

    def references(self) -> tuple[str, ...]:
        if self.hcm is not None and self.hcm.rds_name is not None:
            return (self.hcm.rds_name,)
        return ()


def listener(proto: listener_pb2.Listener) -> Listener:
    if not proto.HasField("api_listener"):
        return Listener(proto.name, None)
    packed = proto.api_listener.api_listener
    if type_name(packed) != HCM:
        raise ResourceError(f"api_listener is {type_name(packed)}, not an HttpConnectionManager")
    return Listener(proto.name, _hcm(unpack(packed, hcm_pb2.HttpConnectionManager, "api_listener")))


def _hcm(proto: hcm_pb2.HttpConnectionManager) -> HttpConnectionManager:
    kind = proto.WhichOneof("route_specifier")
    rds_name: str | None = None
    inline: RouteConfig | None = None
    if kind == "rds":
        source = proto.rds.config_source
        if not (source.HasField("ads") or source.HasField("self")):
            raise ResourceError("rds.config_source must be ads or self")
        if not proto.rds.route_config_name:
            raise ResourceError("rds.route_config_name is empty")
        rds_name = proto.rds.route_config_name
    elif kind == "route_config":
        inline = route_config(proto.route_config)
    else:
        raise ResourceError(f"HttpConnectionManager needs rds or route_config, has {kind}")
    max_duration: float | None = None
    options = proto.common_http_protocol_options
    if options.HasField("max_stream_duration"):
        max_duration = seconds(options.max_stream_duration) or None
    return HttpConnectionManager(
        rds_name=rds_name,
        inline_route_config=inline,
        http_filters=http_filters(proto),
        max_stream_duration_s=max_duration,
    )
