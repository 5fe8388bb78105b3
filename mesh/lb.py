"""Load-balancing pickers, sans-IO.

A picker is built once per endpoint set (on config load or an EDS update) and
then asked for one endpoint per request. Building is where the work goes, so
that ``pick`` stays a few operations.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

from mesh.endpoint import Endpoint, routable
from mesh.hashing_lb import MaglevPicker, RingHashPicker


class Picker(Protocol):
    def pick(self, hash_key: int | None = None) -> Endpoint: ...


class RoundRobinPicker:
    """Smooth weighted round robin (nginx's algorithm).

    Spreads picks of a heavy endpoint evenly through the cycle instead of in a
    burst, so weight 3:1 gives a a b a a a b ... rather than a a a b.
    """

    __slots__ = ("_current", "_endpoints", "_total", "_weights")

    def __init__(self, endpoints: Sequence[Endpoint], rng: random.Random | None = None) -> None:
        usable = routable(endpoints)
        self._endpoints = usable
        self._weights = [e.weight for e in usable]
        self._total = sum(self._weights)
        self._current = [0] * len(usable)
        # Start each worker at a random point of the cycle, so N workers do
        # not all send their first request to the same endpoint.
        for _ in range((rng or random).randrange(min(self._total, 64))):
            self.pick()

    def pick(self, hash_key: int | None = None) -> Endpoint:
        current = self._current
        weights = self._weights
        best = 0
        for i in range(len(current)):
            current[i] += weights[i]
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return self._endpoints[best]


class RandomPicker:
    """Weighted random choice."""

    __slots__ = ("_cumulative", "_endpoints", "_rng")

    def __init__(self, endpoints: Sequence[Endpoint], rng: random.Random | None = None) -> None:
        usable = routable(endpoints)
        self._endpoints = usable
        total = 0
        self._cumulative: list[int] = []
        for e in usable:
            total += e.weight
            self._cumulative.append(total)
        self._rng = rng or random.Random()

    def pick(self, hash_key: int | None = None) -> Endpoint:
        point = self._rng.randrange(self._cumulative[-1])
        for i, edge in enumerate(self._cumulative):
            if point < edge:
                return self._endpoints[i]
        raise AssertionError("unreachable: point below the last edge")


class LeastRequestPicker:
    """Power of two choices (Envoy's LEAST_REQUEST): sample ``choices`` endpoints at
    random and take the one with the fewest in-flight requests per unit of weight."""

    __slots__ = ("_active", "_choices", "_endpoints", "_rng")

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        rng: random.Random | None = None,
        choices: int = 2,
        active: dict[str, int] | None = None,
    ) -> None:
        self._endpoints = routable(endpoints)
        self._rng = rng or random.Random()
        self._choices = choices
        # Shared with the pickers that replace this one (a health change
        # rebuilds them), so requests in flight stay counted.
        self._active: dict[str, int] = {} if active is None else active

    def pick(self, hash_key: int | None = None) -> Endpoint:
        endpoints = self._endpoints
        if len(endpoints) == 1:
            return endpoints[0]
        best: Endpoint | None = None
        best_load = 0.0
        for _ in range(self._choices):
            candidate = endpoints[self._rng.randrange(len(endpoints))]
            load = self._active.get(candidate.address, 0) / candidate.weight
            if best is None or load < best_load:
                best, best_load = candidate, load
        assert best is not None
        return best

    def started(self, endpoint: Endpoint) -> None:
        self._active[endpoint.address] = self._active.get(endpoint.address, 0) + 1

    def finished(self, endpoint: Endpoint) -> None:
        self._active[endpoint.address] = max(self._active.get(endpoint.address, 0) - 1, 0)

    def in_flight(self, endpoint: Endpoint) -> int:
        return self._active.get(endpoint.address, 0)


PickerFactory = Callable[[Sequence[Endpoint]], Picker]

PICKERS: dict[str, PickerFactory] = {
    "round_robin": RoundRobinPicker,
    "random": RandomPicker,
    "least_request": LeastRequestPicker,
    "ring_hash": RingHashPicker,
    "maglev": MaglevPicker,
}


def build_picker(policy: str, endpoints: Sequence[Endpoint]) -> Picker:
    try:
        factory = PICKERS[policy]
    except KeyError:
        raise ValueError(f"unknown load-balancing policy {policy!r}") from None
    return factory(endpoints)
