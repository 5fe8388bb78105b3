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
from collections.abc import Collection, Sequence
from dataclasses import replace

from mesh.endpoint import Endpoint, Health
from mesh.errors import NoEndpointError
from mesh.hashing_lb import MaglevPicker, RingHashPicker
from mesh.lb import LeastRequestPicker, Picker, RandomPicker, RoundRobinPicker
from mesh.xds.cluster import Cluster
from mesh.xds.endpoints import LoadAssignment, LocalityEndpoints

HASHING = frozenset({"ring_hash", "maglev"})
# Envoy's host_selection_retry_max_attempts for the previous-hosts predicate.
HOST_SELECTION_ATTEMPTS = 5


class ClusterBalancer:
    """Picks an endpoint of one cluster; rebuilt whenever its CDS or EDS changes.

    Endpoints that outlier detection ejected or that fail their active health
    checks are left out (:meth:`exclude`). When fewer than the cluster's
    ``panic_threshold`` percent remain, the balancer panics as Envoy's does:
    it spreads requests over every endpoint, healthy or not, rather than pile
    them all on the few (or on none).
    """

    def __init__(
        self, cluster: Cluster, assignment: LoadAssignment, rng: random.Random | None = None
    ) -> None:
        self.policy = cluster.lb_policy
        self._cluster = cluster
        self._assignment = assignment
        self._rng = rng or random.Random()
        self._active: dict[str, int] = {}
        self._excluded: frozenset[str] = frozenset()
        self.panic = False
        self._build()

    def _build(self) -> None:
        cluster = self._cluster
        self._localities, self.panic = _usable_localities(
            self._assignment.localities, self._excluded, cluster.panic_threshold
        )
        self._least_request: list[LeastRequestPicker] = []
        self._pickers: list[Picker] = []
        self._cumulative: list[int] = []
        if self.policy in HASHING:
            if self._localities:
                self._pickers.append(self._hashing_picker(cluster))
                self._cumulative.append(1)
            return
        total = 0
        for locality in self._localities:
            picker = self._locality_picker(cluster, locality.endpoints)
            self._pickers.append(picker)
            total += locality.weight
            self._cumulative.append(total)

    def exclude(self, addresses: frozenset[str]) -> None:
        """Leave these endpoints out of the picks from now on (and nothing else)."""
        if addresses != self._excluded:
            self._excluded = addresses
            self._build()

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints picks go to now."""
        return tuple(e for loc in self._localities for e in loc.endpoints)

    @property
    def all_endpoints(self) -> tuple[Endpoint, ...]:
        """Every endpoint of the assignment, whatever its health."""
        return tuple(e for loc in self._assignment.localities for e in loc.endpoints)

    def pick(self, hash_key: int | None = None, avoid: Collection[str] = ()) -> Endpoint:
        """One endpoint; with ``avoid`` (the hosts a request already tried), another
        one whenever the picker has one (Envoy's previous_hosts retry predicate)."""
        if avoid:
            return self._pick_avoiding(hash_key, avoid)
        pickers = self._pickers
        if len(pickers) == 1:  # the common case, kept to one call
            return pickers[0].pick(hash_key)
        return self._pick(hash_key)

    def _pick_avoiding(self, hash_key: int | None, avoid: Collection[str]) -> Endpoint:
        endpoint = self._pick(hash_key)
        if endpoint.address not in avoid:
            return endpoint
        for _ in range(HOST_SELECTION_ATTEMPTS):
            endpoint = self._pick(hash_key)
            if endpoint.address not in avoid:
                return endpoint
        # A hash, or bad luck: take the first usable endpoint not yet tried.
        for candidate in self.endpoints:
            if candidate.address not in avoid:
                return candidate
        return endpoint

    def _pick(self, hash_key: int | None) -> Endpoint:
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
        if self.policy == "least_request":  # the only policy that reads the counts
            address = endpoint.address
            self._active[address] = self._active.get(address, 0) + 1

    def finished(self, endpoint: Endpoint) -> None:
        if self.policy == "least_request":
            address = endpoint.address
            self._active[address] = max(self._active.get(address, 0) - 1, 0)

    def _locality_picker(self, cluster: Cluster, endpoints: Sequence[Endpoint]) -> Picker:
        if self.policy == "least_request":
            picker = LeastRequestPicker(
                endpoints, self._rng, cluster.least_request_choices, self._active
            )
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


def _usable_localities(
    localities: Sequence[LocalityEndpoints], excluded: frozenset[str], panic_threshold: float
) -> tuple[tuple[LocalityEndpoints, ...], bool]:
    """The localities picks go to, and whether that is a panic (every endpoint)."""
    healthy = _active_priority(localities, excluded)
    if panic_threshold > 0:
        everyone = [e for loc in localities if loc.weight > 0 for e in loc.endpoints if e.weight]
        usable = sum(len(loc.endpoints) for loc in healthy)
        if everyone and usable * 100 < panic_threshold * len(everyone):
            return _panic_priority(localities), True
    return healthy, False


def _active_priority(
    localities: Sequence[LocalityEndpoints], excluded: frozenset[str] = frozenset()
) -> tuple[LocalityEndpoints, ...]:
    """The localities of the best priority that can take traffic, each with routable endpoints."""
    by_priority: dict[int, list[LocalityEndpoints]] = {}
    for locality in localities:
        usable = tuple(
            e
            for e in locality.endpoints
            if e.health.routable and e.weight > 0 and e.address not in excluded
        )
        if usable and locality.weight > 0:
            by_priority.setdefault(locality.priority, []).append(
                replace(locality, endpoints=usable)
            )
    if not by_priority:
        return ()
    return tuple(by_priority[min(by_priority)])


def _panic_priority(localities: Sequence[LocalityEndpoints]) -> tuple[LocalityEndpoints, ...]:
    """Every endpoint of the best priority that has any, whatever its health."""
    by_priority: dict[int, list[LocalityEndpoints]] = {}
    for locality in localities:
        endpoints = tuple(replace(e, health=Health.UNKNOWN) for e in locality.endpoints if e.weight)
        if endpoints and locality.weight > 0:
            by_priority.setdefault(locality.priority, []).append(
                replace(locality, endpoints=endpoints)
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


class RetryLimiter:
    """Concurrent retries of one cluster: Envoy's retry budget when configured,
    else its max_retries circuit breaker. A retry that does not fit is not
    sent; the request fails with its last error instead of adding load to a
    cluster that is already failing."""

    __slots__ = ("active", "budget_percent", "max_retries", "min_concurrency")

    def __init__(
        self, max_retries: int, budget_percent: float | None = None, min_concurrency: int = 3
    ) -> None:
        self.max_retries = max_retries
        self.budget_percent = budget_percent
        self.min_concurrency = min_concurrency
        self.active = 0

    def limit(self, active_requests: int) -> int:
        if self.budget_percent is None:
            return self.max_retries
        return max(self.min_concurrency, int(self.budget_percent * active_requests / 100))

    def try_acquire(self, active_requests: int) -> bool:
        if self.active >= self.limit(active_requests):
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active = max(self.active - 1, 0)
