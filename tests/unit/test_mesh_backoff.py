"""ADS reconnect backoff: 1 s, x1.6, +/-20 % jitter, 120 s cap, reset on response."""

from __future__ import annotations

import random

import pytest

from mesh.backoff import Backoff


def test_sequence_grows_by_1_6_within_jitter_and_caps() -> None:
    backoff = Backoff(rng=random.Random(0))
    nominal = 1.0
    for _ in range(20):
        delay = backoff.next_delay()
        assert nominal * 0.8 <= delay <= nominal * 1.2
        nominal = min(nominal * 1.6, 120.0)
    assert 96.0 <= backoff.next_delay() <= 144.0


def test_reset_starts_over() -> None:
    backoff = Backoff(jitter=0.0)
    assert [backoff.next_delay() for _ in range(3)] == pytest.approx([1.0, 1.6, 2.56])
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_jitter_spreads_clients() -> None:
    delays = {round(Backoff(rng=random.Random(seed)).next_delay(), 6) for seed in range(20)}
    assert len(delays) > 15
