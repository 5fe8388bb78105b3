"""Triple's gRPC-compatible mode: a gRPC call plus Dubbo's own headers.

Group and version select one of several providers of the same interface;
Java and Go providers read them from ``tri-service-group`` and
``tri-service-version``. The request headers ``x-dubbo-service-group`` and
``x-dubbo-service-version`` (Pixiu's names) override the cluster's values.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.clusters import StaticCluster
from gateway.errors import GatewayError

GROUP_HEADER = "x-dubbo-service-group"
VERSION_HEADER = "x-dubbo-service-version"


def triple_headers(cluster: StaticCluster, headers: Mapping[str, str],
                   timeout: float | None) -> tuple[tuple[str, str], ...]:
    out = [("tri-consumer-appname", cluster.application)]
    group = headers.get(GROUP_HEADER) or cluster.group
    version = headers.get(VERSION_HEADER) or cluster.version
    if group:
        out.append(("tri-service-group", group))
    if version:
        out.append(("tri-service-version", version))
    if timeout is not None:
        # Dubbo reads its own timeout header in milliseconds besides grpc-timeout.
        out.append(("tri-service-timeout", str(max(1, int(timeout * 1000)))))
    return tuple(out)


def normalize_triple_error(error: GatewayError) -> GatewayError:
    """dubbo-go answers UNKNOWN "context deadline exceeded" when its own copy of
    the deadline fires before the client's; it is the same timeout."""
    if error.grpc_code == 2 and "deadline exceeded" in error.message:
        error.grpc_code = 4
    return error

