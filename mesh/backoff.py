"""Reconnect backoff for the ADS stream (gRPC's connection backoff, gRFC A6 / A57)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """1 s, then x1.6 each failure, +/-20 % jitter, capped at 120 s.

    ``reset`` after the stream received a response: a server that answers is
    healthy, so the next failure starts again from the initial delay.
    """

    initial_s: float = 1.0
    multiplier: float = 1.6
    jitter: float = 0.2
    max_s: float = 120.0
    rng: random.Random = field(default_factory=random.Random)
    _current: float = 0.0

    def next_delay(self) -> float:
        self._current = (
            self.initial_s
            if self._current == 0
            else min(self._current * self.multiplier, self.max_s)
        )
        return self._current * (1 + self.rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self._current = 0.0
