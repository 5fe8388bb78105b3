"""Active health checking, sans-IO: the per-endpoint state machine and the schedule.

The probes themselves (gRPC Health/Check, HTTP GET, TCP connect) are I/O and
live in the gateway; this module only turns their results into a state, with
Envoy's thresholds:

    UNKNOWN --success--> HEALTHY
    UNKNOWN, HEALTHY --unhealthy_threshold failures in a row--> UNHEALTHY
    UNHEALTHY --healthy_threshold successes in a row--> HEALTHY

An endpoint nobody has probed yet is UNKNOWN and takes traffic (gRFC A27), so
a gateway starting up does not refuse everything until the first round ends.
"""

from __future__ import annotations

import random

from mesh.endpoint import Health
from mesh.xds.cluster import HealthCheck


class HealthState:
    """One endpoint's active health."""

    __slots__ = ("_check", "_failures", "_successes", "status")

    def __init__(self, check: HealthCheck) -> None:
        self._check = check
        self.status = Health.UNKNOWN
        self._successes = 0
        self._failures = 0

    def observe(self, ok: bool) -> bool:
        """Count one probe result; True when the status changed."""
        check = self._check
        before = self.status
        if ok:
            self._failures = 0
            self._successes += 1
            if before is Health.UNKNOWN or (
                before is Health.UNHEALTHY and self._successes >= check.healthy_threshold
            ):
                self.status = Health.HEALTHY
        else:
            self._successes = 0
            self._failures += 1
            if before is not Health.UNHEALTHY and self._failures >= check.unhealthy_threshold:
                self.status = Health.UNHEALTHY
        return self.status is not before


def next_check(check: HealthCheck, now: float, rng: random.Random) -> float:
    """When to probe again: the interval plus up to ``jitter`` more, so that many
    endpoints (or many gateways) do not probe in lockstep."""
    jitter = rng.uniform(0, check.jitter_s) if check.jitter_s > 0 else 0.0
    return now + check.interval_s + jitter
