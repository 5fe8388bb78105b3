"""Retry decisions, sans-IO: which statuses retry, and how long to wait."""

from __future__ import annotations

import random

from gateway.config import RetryPolicy
from gateway.errors import GRPC_CODES_BY_NAME


def retryable_codes(policy: RetryPolicy) -> frozenset[int]:
    return frozenset(GRPC_CODES_BY_NAME[name] for name in policy.on)


def backoff_delay(policy: RetryPolicy, retry_number: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff (gRFC A6): uniform in [0, min(base*2^n, max)]."""
    ceiling = min(policy.backoff * (2 ** (retry_number - 1)), policy.max_backoff)
    return rng.uniform(0, ceiling)
