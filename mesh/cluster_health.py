"""One cluster's endpoint health: outlier ejections and active checks together.

It outlives the cluster's balancers (a CDS or EDS update builds a new
balancer; the ejections and probe results stay) and tells the current
balancer which endpoints to leave out. Whatever changes is reported once, as
a :class:`HealthEvent`, to the ``on_event`` callback the gateway gives (logs
and metrics); the mesh itself does no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mesh.endpoint import Health
from mesh.outlier import Ejection, Outcome, OutlierDetector
from mesh.xds.cluster import HealthCheck, OutlierDetection

if TYPE_CHECKING:
    from mesh.balancer import ClusterBalancer


@dataclass(frozen=True, slots=True)
class HealthEvent:
    cluster: str
    address: str
    kind: str  # ejected | restored | unhealthy | healthy
    reason: str = ""  # the outlier check that ejected, or the probe kind
    duration_s: float = 0.0


OnEvent = Callable[[HealthEvent], None]


class ClusterHealth:
    def __init__(
        self,
        name: str,
        outlier: OutlierDetection | None,
        health_check: HealthCheck | None,
        now: float,
        rng: random.Random | None = None,
        on_event: OnEvent | None = None,
    ) -> None:
        self.name = name
        self.health_check = health_check
        self._rng = rng
        self.detector = OutlierDetector(outlier, now, rng) if outlier is not None else None
        self.active: dict[str, Health] = {}
        self._addresses: frozenset[str] = frozenset()
        self._balancer: ClusterBalancer | None = None
        self._on_event = on_event

    def configure(
        self, outlier: OutlierDetection | None, health_check: HealthCheck | None, now: float
    ) -> None:
        """A CDS update: keep the state when the policy is unchanged, else start over."""
        if self.detector is None or self.detector.config != outlier:
            self.detector = OutlierDetector(outlier, now, self._rng) if outlier else None
            if self.detector is not None:
                self.detector.set_endpoints(self._addresses)
        if health_check != self.health_check:
            self.health_check = health_check
            self.active.clear()

    def attach(self, balancer: ClusterBalancer) -> None:
        """The cluster's current balancer, told at once which endpoints are out."""
        self._balancer = balancer
        self._addresses = frozenset(e.address for e in balancer.all_endpoints)
        if self.detector is not None:
            self.detector.set_endpoints(self._addresses)
        for address in list(self.active):
            if address not in self._addresses:
                del self.active[address]
        balancer.exclude(self.excluded)

    @property
    def addresses(self) -> frozenset[str]:
        return self._addresses

    @property
    def excluded(self) -> frozenset[str]:
        """Endpoints out of the picker: ejected, or failing their active checks."""
        unhealthy = {a for a, h in self.active.items() if h is Health.UNHEALTHY}
        ejected = self.detector.ejected if self.detector is not None else frozenset()
        return ejected | unhealthy

    # -- inputs --------------------------------------------------------------

    def record(self, address: str, outcome: Outcome, now: float) -> None:
        if self.detector is None:
            return
        ejection = self.detector.record(address, outcome, now)
        if ejection is not None:
            self._ejections([ejection])

    def sweep(self, now: float) -> None:
        if self.detector is not None:
            self._ejections(self.detector.sweep(now))

    def next_sweep(self) -> float | None:
        return self.detector.next_sweep() if self.detector is not None else None

    def set_active(self, results: Mapping[str, Health], report: bool = True) -> None:
        """Probe states (this process's checker or the elected one's), by address;
        ``report`` False applies them without events (the prober reported them)."""
        changed = False
        for address, status in results.items():
            if address not in self._addresses or self.active.get(address) is status:
                continue
            before = self.active.get(address, Health.UNKNOWN)
            self.active[address] = status
            changed = True
            if report and (status is Health.UNHEALTHY or before is Health.UNHEALTHY):
                kind = "unhealthy" if status is Health.UNHEALTHY else "healthy"
                reason = self.health_check.kind if self.health_check else ""
                self._emit(HealthEvent(self.name, address, kind, reason))
        if changed:
            self._refresh()

    # -- outputs -------------------------------------------------------------

    def endpoint_status(self, address: str) -> dict[str, object]:
        """What /clusters shows for one endpoint."""
        detector = self.detector
        return {
            "active_health": self.active.get(address, Health.UNKNOWN).value,
            "ejected": detector is not None and address in detector.ejected,
            "ejections": detector.ejections(address) if detector is not None else 0,
        }

    def panicking(self) -> bool:
        return self._balancer is not None and self._balancer.panic

    def _ejections(self, ejections: Iterable[Ejection]) -> None:
        any_change = False
        for e in ejections:
            any_change = True
            if e.ejected:
                reason = e.reason.value if e.reason else ""
                self._emit(HealthEvent(self.name, e.address, "ejected", reason, e.duration_s))
            else:
                self._emit(HealthEvent(self.name, e.address, "restored"))
        if any_change:
            self._refresh()

    def _refresh(self) -> None:
        if self._balancer is not None:
            self._balancer.exclude(self.excluded)

    def _emit(self, event: HealthEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)
