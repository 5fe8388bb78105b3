"""Endpoints: the addresses a cluster's load balancer picks from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from mesh.errors import NoEndpointError


class Health(Enum):
    """Envoy's endpoint health, reduced to what routing needs."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"

    @property
    def routable(self) -> bool:
        # gRFC A27: only HEALTHY and UNKNOWN endpoints take traffic.
        return self in (Health.UNKNOWN, Health.HEALTHY)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    weight: int = 1
    labels: tuple[tuple[str, str], ...] = ()
    health: Health = Health.UNKNOWN
    locality: str = ""
    priority: int = 0
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # host:port, or [v6]:port; computed once, as every request reads it.
    address: str = field(init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        host = f"[{self.host}]" if ":" in self.host else self.host
        object.__setattr__(self, "address", f"{host}:{self.port}")


def routable(endpoints: Sequence[Endpoint]) -> list[Endpoint]:
    """The endpoints that may take traffic; raises NoEndpointError if none."""
    usable = [e for e in endpoints if e.health.routable and e.weight > 0]
    if not usable:
        raise NoEndpointError("no healthy endpoint")
    return usable
