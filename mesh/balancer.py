"""A cluster's balancer over priorities and localities (gRFC A27's LB tree).

    priority      the lowest-numbered priority that has a routable endpoint
      └ locality  picked at random in proportion to its locality weight
          └ endpoint  by the cluster's policy (round robin, least request, random)

Ring hash and Maglev hash over the whole chosen priority instead, an
endpoint's weight scaled by its locality's share, so that a key keeps its
endpoint whichever locality it is in.

Within a locality round robin honours endpoint weights (smooth WRR); gRPC's
round_robin ignores them, which is the same when weights are equal.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from mesh.endpoint import Endpoint
from mesh.errors import NoEndpointError
from mesh.hashing_lb import MaglevPicker, RingHashPicker
from mesh.lb import LeastRequestPicker, Picker, RandomPicker, RoundRobinPicker
from mesh.xds.cluster import Cluster
from mesh.xds.endpoints import LoadAssignment, LocalityEndpoints

HASHING = frozenset({"ring_hash", "maglev"})


class ClusterBalancer:
    """Picks an endpoint of one cluster; rebuilt whenever its CDS or EDS changes."""

    def __init__(
        self, cluster: Cluster, assignment: LoadAssignment, rng: random.Random | None = None
    ) -> None:
        self.policy = cluster.lb_policy
        self._rng = rng or random.Random()
        self._localities = _active_priority(assignment.localities)
        self._least_request: list[LeastRequestPicker] = []
        self._pickers: list[Picker] = []
        self._cumulative: list[int] = []
        if self.policy in HASHING:
            self._pickers.append(self._hashing_picker(cluster))
            self._cumulative.append(1)
            return
        total = 0
        for locality in self._localities:
            picker = self._locality_picker(cluster, locality.endpoints)
            self._pickers.append(picker)
            total += locality.weight
            self._cumulative.append(total)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(e for loc in self._localities for e in loc.endpoints if e.health.routable)

    def pick(self, hash_key: int | None = None) -> Endpoint:
        pickers = self._pickers
        if not pickers:
            raise NoEndpointError("no healthy endpoint in any priority")
        if len(pickers) == 1:
            return pickers[0].pick(hash_key)
        point = self._rng.randrange(self._cumulative[-1])
        for picker, edge in zip(pickers, self._cumulative, strict=True):
            if point < edge:
                return picker.pick(hash_key)
        raise AssertionError("unreachable: point below the last edge")

    def started(self, endpoint: Endpoint) -> None:
        for picker in self._least_request:
            picker.started(endpoint)

    def finished(self, endpoint: Endpoint) -> None:
        for picker in self._least_request:
            picker.finished(endpoint)

    def _locality_picker(self, cluster: Cluster, endpoints: Sequence[Endpoint]) -> Picker:
        if self.policy == "least_request":
            picker = LeastRequestPicker(endpoints, self._rng, cluster.least_request_choices)
            self._least_request.append(picker)
            return picker
        if self.policy == "random":
            return RandomPicker(endpoints, self._rng)
        return RoundRobinPicker(endpoints, self._rng)

    def _hashing_picker(self, cluster: Cluster) -> Picker:
        scaled = [
            replace(e, weight=e.weight * loc.weight)
            for loc in self._localities
            for e in loc.endpoints
        ]
        if self.policy == "maglev":
            return MaglevPicker(scaled, self._rng, cluster.maglev_table_size)
        return RingHashPicker(scaled, self._rng, cluster.ring_min_size, cluster.ring_max_size)


def _active_priority(localities: Sequence[LocalityEndpoints]) -> tuple[LocalityEndpoints, ...]:
    """The localities of the best priority that can take traffic, each with routable endpoints."""
    by_priority: dict[int, list[LocalityEndpoints]] = {}
    for locality in localities:
        usable = tuple(e for e in locality.endpoints if e.health.routable and e.weight > 0)
        if usable and locality.weight > 0:
            by_priority.setdefault(locality.priority, []).append(
                replace(locality, endpoints=usable)
            )
    if not by_priority:
        return ()
    return tuple(by_priority[min(by_priority)])


class RequestCounter:
    """In-flight requests of one cluster, against its circuit breaker's max_requests."""

    __slots__ = ("in_flight", "max_requests")

    def __init__(self, max_requests: int) -> None:
        self.max_requests = max_requests
        self.in_flight = 0

    def try_acquire(self) -> bool:
        """Count one more request, unless the circuit breaker is open (gRFC A32: fail it)."""
        if self.in_flight >= self.max_requests:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight = max(self.in_flight - 1, 0)
