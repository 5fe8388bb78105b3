"""meshgate's proxyless mesh core: xDS (ADS) discovery, routing and load balancing.

The gateway uses :class:`MeshCore` to resolve ``xds:///HOST:PORT`` clusters and
executes what each :class:`RouteDecision` says (timeout, retry, fault, circuit
breaking) with the pure helpers :func:`should_retry`, :func:`retry_backoff`
and :func:`fault_decision`.
"""

from mesh.balancer import RequestCounter
from mesh.bootstrap import Bootstrap
from mesh.bootstrap import load as load_bootstrap
from mesh.core import MeshCore
from mesh.decision import UNAVAILABLE, RouteDecision
from mesh.errors import BootstrapError, MeshError, ResourceError, TargetNotReady
from mesh.fault import FaultPolicy, fault_decision
from mesh.retry import RetryPolicy, retry_backoff, should_retry

__all__ = [
    "UNAVAILABLE",
    "Bootstrap",
    "BootstrapError",
    "FaultPolicy",
    "MeshCore",
    "MeshError",
    "RequestCounter",
    "ResourceError",
    "RetryPolicy",
    "RouteDecision",
    "TargetNotReady",
    "fault_decision",
    "load_bootstrap",
    "retry_backoff",
    "should_retry",
]
