"""What a route's ``cluster:`` names: a static cluster, an ``xds:///`` target,
or ``xds:///*`` (the target found by the service's interface).

The one place that knows the ``xds:///`` spelling.
"""

from __future__ import annotations

from dataclasses import dataclass

XDS_SCHEME = "xds:///"
BY_INTERFACE = "*"


@dataclass(frozen=True, slots=True)
class StaticName:
    name: str


@dataclass(frozen=True, slots=True)
class XdsTarget:
    target: str  # HOST:PORT, as a proxyless gRPC client's xds:/// target


@dataclass(frozen=True, slots=True)
class ByInterface:
    pass


ClusterName = StaticName | XdsTarget | ByInterface


def parse_cluster_name(text: str) -> ClusterName:
    """Raises ValueError for an ``xds:///`` name that is neither HOST:PORT nor ``*``."""
    if not text.startswith(XDS_SCHEME):
        return StaticName(text)
    target = text.removeprefix(XDS_SCHEME)
    if target == BY_INTERFACE:
        return ByInterface()
    if ":" not in target:
        raise ValueError("an xds:/// cluster needs HOST:PORT, or * to pick the target by interface")
    return XdsTarget(target)
