"""The mesh core's exceptions, in one tree.

    MeshError
    ├── BootstrapError         the bootstrap file or environment is unusable
    ├── ResourceError          an xDS resource failed validation (becomes a NACK)
    ├── InvalidTransition      the ADS state table has no entry for (state, event)
    ├── TargetNotReady         wait_ready timed out, or the target was never watched
    └── NoEndpointError        the picked cluster has no routable endpoint

Callers that only care that "the mesh said no" catch MeshError.
"""

from __future__ import annotations


class MeshError(Exception):
    """Base of every error the mesh core raises on purpose."""


class BootstrapError(MeshError):
    """The GRPC_XDS_BOOTSTRAP document is missing, malformed or incomplete.

    ``field`` is the dotted path of the offending field, e.g.
    ``xds_servers[0].server_uri``.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"bootstrap {field}: {problem}")
        self.field = field
        self.problem = problem


class ResourceError(MeshError):
    """An xDS resource is invalid; the message is what the NACK's error_detail says."""

    def __init__(self, problem: str, name: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.name = name

    def named(self, name: str) -> ResourceError:
        """The same problem, attributed to a resource name once it is known."""
        return ResourceError(self.problem, name)


class InvalidTransition(MeshError):
    """A resource state machine received an event its table does not allow."""


class TargetNotReady(MeshError):
    """A target's chain LDS -> RDS -> CDS -> EDS is not resolved (yet, or at all)."""


class NoEndpointError(MeshError, LookupError):
    """The cluster has no routable endpoint."""
