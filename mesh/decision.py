"""What the mesh core tells the gateway for one request."""

from __future__ import annotations

from dataclasses import dataclass, field

from mesh.balancer import ClusterBalancer, RequestCounter, RetryLimiter
from mesh.cluster_health import ClusterHealth
from mesh.endpoint import Endpoint
from mesh.fault import FaultPolicy
from mesh.retry import RetryPolicy
from mesh.security import UpstreamTls

# The gRPC status a request gets when the mesh cannot route it.
UNAVAILABLE = 14


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """One request's route. ``error`` set means: fail the request with UNAVAILABLE."""

    target: str
    route_name: str
    cluster: str | None
    endpoint: Endpoint | None
    timeout_s: float | None = None
    retry: RetryPolicy | None = None
    fault: FaultPolicy | None = None
    hash_key: int | None = None
    max_requests: int = 1024
    error: str | None = None
    balancer: ClusterBalancer | None = field(default=None, repr=False, compare=False)
    requests: RequestCounter | None = field(default=None, repr=False, compare=False)
    health: ClusterHealth | None = field(default=None, repr=False, compare=False)
    retries: RetryLimiter | None = field(default=None, repr=False, compare=False)
    # How to secure the connection to ``endpoint`` (None: plaintext).
    security: UpstreamTls | None = None

    @property
    def address(self) -> str | None:
        return None if self.endpoint is None else self.endpoint.address

    def pick(self) -> Endpoint:
        """Another endpoint of the same cluster, for a retry attempt."""
        if self.balancer is None:
            raise LookupError(self.error or "no cluster to pick from")
        return self.balancer.pick(self.hash_key)

    def begin(self, endpoint: Endpoint) -> bool:
        """Start an attempt on ``endpoint``; False when the circuit breaker is open."""
        if self.requests is not None and not self.requests.try_acquire():
            return False
        if self.balancer is not None:
            self.balancer.started(endpoint)
        return True

    def end(self, endpoint: Endpoint) -> None:
        """Finish an attempt that ``begin`` let through."""
        if self.requests is not None:
            self.requests.release()
        if self.balancer is not None:
            self.balancer.finished(endpoint)
