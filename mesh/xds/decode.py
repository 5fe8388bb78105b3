"""Decode one ``Any`` from a DiscoveryResponse into a validated resource.

Decoding happens in two steps so that an invalid resource is still attributed
to its name: the name is read first, then the resource is validated. A
resource whose name cannot even be read fails the response as a whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from mesh.errors import ResourceError
from mesh.xds import type_urls
from mesh.xds.cluster import Cluster, cluster
from mesh.xds.endpoints import LoadAssignment, load_assignment
from mesh.xds.listener import Listener, listener
from mesh.xds.route_config import RouteConfig, route_config

Resource = Listener | RouteConfig | Cluster | LoadAssignment


@dataclass(frozen=True, slots=True)
class _Kind:
    message: type[Message]
    name_of: Callable[[Any], str]
    translate: Callable[[Any], Resource]


_KINDS: dict[str, _Kind] = {
    type_urls.LISTENER: _Kind(listener_pb2.Listener, lambda m: m.name, listener),
    type_urls.ROUTE_CONFIGURATION: _Kind(
        route_pb2.RouteConfiguration, lambda m: m.name, route_config
    ),
    type_urls.CLUSTER: _Kind(cluster_pb2.Cluster, lambda m: m.name, cluster),
    type_urls.CLUSTER_LOAD_ASSIGNMENT: _Kind(
        endpoint_pb2.ClusterLoadAssignment, lambda m: m.cluster_name, load_assignment
    ),
}


@dataclass(frozen=True, slots=True)
class Decoded:
    name: str
    resource: Resource
    message: Message  # the raw proto, kept for config_dump


def peek(type_url: str, packed: any_pb2.Any) -> tuple[str, Message]:
    """The resource's name and message, without validating it."""
    kind = _KINDS.get(type_url)
    if kind is None:
        raise ResourceError(f"unsupported type {type_url}")
    wrapper_name = ""
    if packed.type_url == type_urls.RESOURCE_WRAPPER:
        wrapper = discovery_pb2.Resource()
        try:
            wrapper.ParseFromString(packed.value)
        except DecodeError as exc:
            raise ResourceError(f"cannot decode Resource wrapper: {exc}") from exc
        wrapper_name = wrapper.name
        packed = wrapper.resource
    if packed.type_url != type_url:
        raise ResourceError(
            f"resource of type {packed.type_url} in a {type_url} response", wrapper_name or None
        )
    message = kind.message()
    try:
        message.ParseFromString(packed.value)
    except DecodeError as exc:
        raise ResourceError(f"cannot decode: {exc}", wrapper_name or None) from exc
    name = kind.name_of(message) or wrapper_name
    if not name:
        raise ResourceError("resource without a name")
    return name, message


def decode(type_url: str, packed: any_pb2.Any) -> Decoded:
    name, message = peek(type_url, packed)
    try:
        resource = _KINDS[type_url].translate(message)
    except ResourceError as exc:
        raise exc.named(name) from exc
    return Decoded(name, resource, message)


def references(resource: Resource) -> tuple[tuple[str, str], ...]:
    """(type_url, name) of every resource this one depends on."""
    if isinstance(resource, Listener):
        hcm = resource.hcm
        if hcm is None:
            return ()
        if hcm.inline_route_config is not None:
            return tuple((type_urls.CLUSTER, n) for n in hcm.inline_route_config.references())
        return tuple((type_urls.ROUTE_CONFIGURATION, n) for n in resource.references())
    if isinstance(resource, RouteConfig):
        return tuple((type_urls.CLUSTER, n) for n in resource.references())
    if isinstance(resource, Cluster):
        return tuple((type_urls.CLUSTER_LOAD_ASSIGNMENT, n) for n in resource.references())
    return ()
