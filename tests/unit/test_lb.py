from __future__ import annotations

import random
from collections import Counter

import pytest

from mesh.endpoint import Endpoint, Health
from mesh.errors import NoEndpointError
from mesh.lb import RandomPicker, RoundRobinPicker, build_picker


def endpoints(*weights: int) -> list[Endpoint]:
    return [Endpoint("10.0.0.1", 8000 + i, weight=w) for i, w in enumerate(weights)]


def test_round_robin_is_exact_per_cycle_and_smooth() -> None:
    picker = RoundRobinPicker(endpoints(5, 1, 1), rng=random.Random(1))
    picks = [picker.pick().port for _ in range(7 * 10)]
    assert Counter(picks) == {8000: 50, 8001: 10, 8002: 10}
    # Smooth: the others are spread through the cycle, so the heavy endpoint
    # takes at most 4 picks in a row (a burst of all 5 is plain weighted RR).
    sequence = "".join("h" if p == 8000 else "." for p in picks)
    assert max(len(run) for run in sequence.split(".")) == 4


def test_unhealthy_and_zero_weight_endpoints_are_skipped() -> None:
    eps = [
        Endpoint("h", 1, health=Health.UNHEALTHY),
        Endpoint("h", 2, health=Health.HEALTHY),
        Endpoint("h", 3, weight=0),
    ]
    picker = RoundRobinPicker(eps)
    assert {picker.pick().port for _ in range(10)} == {2}


def test_no_endpoint() -> None:
    with pytest.raises(NoEndpointError):
        RoundRobinPicker([Endpoint("h", 1, health=Health.DRAINING)])


def test_random_follows_weights() -> None:
    picker = RandomPicker(endpoints(3, 1), rng=random.Random(7))
    counts = Counter(picker.pick().port for _ in range(4000))
    assert 2800 < counts[8000] < 3200


def test_unknown_policy() -> None:
    with pytest.raises(ValueError, match="unknown load-balancing policy"):
        build_picker("fastest", endpoints(1))
