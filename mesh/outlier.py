"""Outlier detection, sans-IO: fed each attempt's outcome and the time, it
decides which endpoints of one cluster to eject and when to bring them back.

Two families of checks, as Envoy runs them:

- consecutive failures (Envoy's ``consecutive_5xx`` and
  ``consecutive_gateway_failure``) eject the moment the count is reached;
- success rate and failure percentage (Envoy's, and gRFC A50's) compare the
  endpoints once per ``interval`` over the requests of that interval.

An endpoint ejected for the n-th time stays out ``base_ejection_time * n``
(capped at ``max_ejection_time``); every interval it spends in the picker
takes one off n again. ``max_ejection_percent`` caps how much of the cluster
may be out at once, though one endpoint may always be (Envoy's rule).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from mesh.xds.cluster import OutlierDetection


class Outcome(Enum):
    """One attempt's result, as outlier detection sees it."""

    SUCCESS = "success"  # any reply that is not a 5xx (a 4xx is the client's fault)
    ERROR = "error"  # a 5xx that is not a gateway failure: 500, 501
    GATEWAY_FAILURE = "gateway_failure"  # 502, 503, 504, connect failure, reset, timeout


class Reason(Enum):
    CONSECUTIVE_5XX = "consecutive_5xx"
    CONSECUTIVE_GATEWAY_FAILURE = "consecutive_gateway_failure"
    SUCCESS_RATE = "success_rate"
    FAILURE_PERCENTAGE = "failure_percentage"


@dataclass(frozen=True, slots=True)
class Ejection:
    """An endpoint leaving (``ejected``) or coming back to the picker."""

    address: str
    ejected: bool
    reason: Reason | None = None  # why it was ejected; None when it comes back
    duration_s: float = 0.0  # how long it stays out


class _Host:
    __slots__ = (
        "consecutive_5xx",
        "consecutive_gateway",
        "ejected_at",
        "ejected_for",
        "ejections",
        "failures",
        "successes",
    )

    def __init__(self) -> None:
        self.successes = 0
        self.failures = 0
        self.consecutive_5xx = 0
        self.consecutive_gateway = 0
        self.ejections = 0  # the multiplier of base_ejection_time
        self.ejected_at: float | None = None
        self.ejected_for = 0.0


class OutlierDetector:
    """The outlier state of one cluster's endpoints (by address)."""

    def __init__(
        self, config: OutlierDetection, now: float, rng: random.Random | None = None
    ) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self._hosts: dict[str, _Host] = {}
        self._last_sweep = now

    # -- endpoints -----------------------------------------------------------

    def set_endpoints(self, addresses: Iterable[str]) -> None:
        """Follow the cluster's endpoint set: new ones start clean, gone ones are forgotten."""
        wanted = set(addresses)
        for address in list(self._hosts):
            if address not in wanted:
                del self._hosts[address]
        for address in wanted:
            self._hosts.setdefault(address, _Host())

    @property
    def ejected(self) -> frozenset[str]:
        return frozenset(a for a, h in self._hosts.items() if h.ejected_at is not None)

    def ejections(self, address: str) -> int:
        host = self._hosts.get(address)
        return host.ejections if host is not None else 0

    def ejected_until(self, address: str) -> float | None:
        host = self._hosts.get(address)
        if host is None or host.ejected_at is None:
            return None
        return host.ejected_at + host.ejected_for

    # -- outcomes ------------------------------------------------------------

    def record(self, address: str, outcome: Outcome, now: float) -> Ejection | None:
        """Count one attempt; an ejection when it completes a run of failures."""
        host = self._hosts.get(address)
        if host is None:
            return None  # an endpoint the cluster no longer has
        config = self.config
        if outcome is Outcome.SUCCESS:
            host.successes += 1
            host.consecutive_5xx = 0
            host.consecutive_gateway = 0
            return None
        host.failures += 1
        host.consecutive_5xx += 1
        if outcome is Outcome.GATEWAY_FAILURE:
            host.consecutive_gateway += 1
        else:
            host.consecutive_gateway = 0
        if host.ejected_at is not None:
            return None
        if config.consecutive_5xx and host.consecutive_5xx >= config.consecutive_5xx:
            host.consecutive_5xx = 0
            if self._enforced(config.enforcing_consecutive_5xx):
                return self._eject(address, host, Reason.CONSECUTIVE_5XX, now)
        if (
            config.consecutive_gateway_failure
            and host.consecutive_gateway >= config.consecutive_gateway_failure
        ):
            host.consecutive_gateway = 0
            if self._enforced(config.enforcing_consecutive_gateway_failure):
                return self._eject(address, host, Reason.CONSECUTIVE_GATEWAY_FAILURE, now)
        return None

    # -- the interval --------------------------------------------------------

    def next_sweep(self) -> float:
        return self._last_sweep + self.config.interval_s

    def sweep(self, now: float) -> list[Ejection]:
        """Once per interval: the rate checks over the interval's counts, then
        bring back the endpoints whose time is up (gRFC A50's order)."""
        if now < self.next_sweep():
            return []
        self._last_sweep = now
        events: list[Ejection] = []
        events += self._success_rate(now)
        events += self._failure_percentage(now)
        for address, host in self._hosts.items():
            host.successes = host.failures = 0
            if host.ejected_at is None:
                host.ejections = max(host.ejections - 1, 0)
            elif now >= host.ejected_at + host.ejected_for:
                host.ejected_at = None
                events.append(Ejection(address, ejected=False))
        return events

    def _volumes(self, minimum: int) -> list[tuple[str, _Host, int]]:
        return [
            (address, host, host.successes + host.failures)
            for address, host in self._hosts.items()
            if host.successes + host.failures >= minimum
        ]

    def _success_rate(self, now: float) -> list[Ejection]:
        config = self.config
        if not config.enforcing_success_rate:
            return []
        candidates = self._volumes(config.success_rate_request_volume)
        if not candidates or len(candidates) < config.success_rate_minimum_hosts:
            return []
        rates = [host.successes / total for _, host, total in candidates]
        mean = sum(rates) / len(rates)
        stdev = math.sqrt(sum((r - mean) ** 2 for r in rates) / len(rates))
        threshold = mean - stdev * (config.success_rate_stdev_factor / 1000)
        events = []
        for (address, host, _), rate in zip(candidates, rates, strict=True):
            outlier = rate < threshold and host.ejected_at is None
            if outlier and self._enforced(config.enforcing_success_rate):
                event = self._eject(address, host, Reason.SUCCESS_RATE, now)
                if event is not None:
                    events.append(event)
        return events

    def _failure_percentage(self, now: float) -> list[Ejection]:
        config = self.config
        if not config.enforcing_failure_percentage:
            return []
        candidates = self._volumes(config.failure_percentage_request_volume)
        if not candidates or len(candidates) < config.failure_percentage_minimum_hosts:
            return []
        events = []
        for address, host, total in candidates:
            percent = 100 * host.failures / total
            outlier = percent >= config.failure_percentage_threshold and host.ejected_at is None
            if outlier and self._enforced(config.enforcing_failure_percentage):
                event = self._eject(address, host, Reason.FAILURE_PERCENTAGE, now)
                if event is not None:
                    events.append(event)
        return events

    # -- ejecting ------------------------------------------------------------

    def _enforced(self, percent: int) -> bool:
        return percent >= 100 or self._rng.randrange(100) < percent

    def _may_eject(self) -> bool:
        ejected = sum(1 for h in self._hosts.values() if h.ejected_at is not None)
        if ejected == 0:
            return True  # Envoy ejects one endpoint whatever the percentage says
        return (ejected + 1) * 100 <= self.config.max_ejection_percent * len(self._hosts)

    def _eject(self, address: str, host: _Host, reason: Reason, now: float) -> Ejection | None:
        if not self._may_eject():
            return None
        config = self.config
        host.ejections += 1
        host.ejected_at = now
        host.ejected_for = min(
            config.base_ejection_time_s * host.ejections,
            max(config.base_ejection_time_s, config.max_ejection_time_s),
        )
        return Ejection(address, ejected=True, reason=reason, duration_s=host.ejected_for)
