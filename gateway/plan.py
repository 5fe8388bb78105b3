"""One request's plan for reaching its cluster, whatever decided it.

A static cluster (YAML) and an ``xds:///`` target (the mesh core) both come
down to the same few things: the endpoint to try, how to pick another for a
retry, the in-flight cap, the deadline, the retry policy and any fault to
inject. The invoker executes plans and does not care where they came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.clusters import StaticCluster
from gateway.config import RetryPolicy
from gateway.errors import UpstreamUnavailable
from gateway.retry import retryable_codes
from mesh.endpoint import Endpoint
from mesh.lb import NoEndpointError


@dataclass(frozen=True, slots=True)
class RetrySpec:
    codes: frozenset[int]
    max_attempts: int  # the first try included
    per_try_timeout: float | None
    backoff: float
    max_backoff: float

    @classmethod
    def from_route(cls, policy: RetryPolicy) -> RetrySpec:
        return cls(retryable_codes(policy), policy.attempts + 1, policy.per_try_timeout,
                   policy.backoff, policy.max_backoff)


@dataclass(frozen=True, slots=True)
class CallPlan:
    cluster: str
    protocol: str
    first: Endpoint
    pick: Callable[[], Endpoint]
    begin: Callable[[Endpoint], bool]
    end: Callable[[Endpoint], None]
    timeout: float | None = None
    retry: RetrySpec | None = None
    delay: float | None = None
    abort: int | None = None


def static_plan(cluster: StaticCluster, timeout: float | None,
                retry: RetryPolicy | None) -> CallPlan:
    def pick() -> Endpoint:
        try:
            return cluster.picker.pick()
        except NoEndpointError as exc:
            raise UpstreamUnavailable(f"cluster {cluster.name!r}: {exc}") from None

    # least_request counts in-flight requests per endpoint through these hooks.
    started = getattr(cluster.picker, "started", None)
    finished = getattr(cluster.picker, "finished", None)

    def begin(endpoint: Endpoint) -> bool:
        if cluster.in_flight >= cluster.max_requests:
            return False
        cluster.in_flight += 1
        if started is not None:
            started(endpoint)
        return True

    def end(endpoint: Endpoint) -> None:
        cluster.in_flight -= 1
        if finished is not None:
            finished(endpoint)

    return CallPlan(cluster.name, cluster.protocol, pick(), pick, begin, end, timeout,
                    RetrySpec.from_route(retry) if retry else None)
