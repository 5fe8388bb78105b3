"""Retry policy (gRFC A44 for xDS, the route's ``retry:`` for YAML): the data, and the
pure decisions the gateway's invoker takes with it."""

from __future__ import annotations

import random
from dataclasses import dataclass

# retry_on names gRPC honours, and their status codes; other names are ignored.
RETRY_ON_CODES = {
    "cancelled": 1,
    "deadline-exceeded": 4,
    "internal": 13,
    "resource-exhausted": 8,
    "unavailable": 14,
}
# Envoy's retry_on conditions of the transport, by the cause an upstream
# failure carries (gateway.errors uses the same words).
RETRY_ON_CAUSES = {
    "connect-failure": "connect_failure",
    "refused-stream": "refused_stream",
    "reset": "reset",
}
DEFAULT_BASE_S = 0.025
# gRPC's channel never makes more than this many attempts, whatever xDS says;
# applied when an xDS policy is translated.
MAX_ATTEMPTS_CAP = 5


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retry_on: frozenset[int]
    max_attempts: int = 2
    per_try_timeout_s: float | None = None
    backoff_base_s: float = DEFAULT_BASE_S
    backoff_max_s: float = DEFAULT_BASE_S * 10
    # Transport causes that retry whatever the status (connect_failure, ...).
    retry_on_causes: frozenset[str] = frozenset()


def should_retry(
    policy: RetryPolicy | None, status_code: int, attempt: int, cause: str | None = None
) -> bool:
    """Whether attempt number ``attempt`` (1 = the first try) that ended with
    ``status_code`` (and, for a transport failure, ``cause``) may be followed
    by another one."""
    if policy is None:
        return False
    if status_code not in policy.retry_on and (
        cause is None or cause not in policy.retry_on_causes
    ):
        return False
    return attempt < policy.max_attempts


def retry_backoff(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Seconds to wait before attempt ``attempt + 1``: fully jittered exponential."""
    ceiling = min(policy.backoff_base_s * 2 ** max(attempt - 1, 0), policy.backoff_max_s)
    return rng.uniform(0, ceiling)
