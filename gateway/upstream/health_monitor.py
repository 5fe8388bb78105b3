"""The worker's health loop: outlier sweeps, active probes, channel upkeep.

Every tick it

- runs each cluster's outlier sweep when its interval is up (ejections are
  per worker, as each worker sees only its own requests);
- if this worker probes (it is alone, or it holds the election of
  :mod:`gateway.health_share`), sends the probes that are due and publishes
  the states; otherwise applies the states the probing worker published;
- closes the gRPC channels of endpoints that left every cluster, and gives
  static clusters' endpoints their cluster's keepalive.

The decisions are the mesh's sans-IO pieces (``mesh.health``,
``mesh.outlier``); this module is only the clock and the sockets.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from gateway.health_share import HealthShare, States
from gateway.upstream.grpc import Keepalive
from gateway.upstream.health_probe import Prober
from gateway.upstream.registry import UpstreamClients
from mesh.cluster_health import ClusterHealth
from mesh.endpoint import Health
from mesh.health import HealthState, next_check
from mesh.xds.cluster import HealthCheck

log = logging.getLogger(f"meshgate.{__name__}")

TICK_S = 0.1
# How often channels and probe connections are matched to the endpoints.
UPKEEP_S = 1.0


class Probing(Protocol):
    """What the loop needs of the probes (``Prober``; a fake in unit tests)."""

    async def probe(self, check: HealthCheck, address: str) -> bool: ...

    async def retain(self, addresses: set[str]) -> None: ...

    async def close(self) -> None: ...


Clusters = Callable[[], Mapping[str, ClusterHealth]]
KeepaliveByAddress = Callable[[], Mapping[str, Keepalive]]
Key = tuple[str, str]  # cluster key, endpoint address


class _Probed:
    __slots__ = ("check", "due", "state")

    def __init__(self, check: HealthCheck, due: float) -> None:
        self.check = check
        self.state = HealthState(check)
        self.due = due


class HealthMonitor:
    def __init__(
        self,
        clusters: Clusters,
        *,
        share: HealthShare | None = None,
        prober: Probing | None = None,
        channels: UpstreamClients | None = None,
        keepalive: KeepaliveByAddress | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._clusters = clusters
        self._share = share
        self._prober: Probing = prober or Prober()
        self._channels = channels
        self._keepalive = keepalive
        self._clock = clock
        self._rng = rng or random.Random()
        self._probed: dict[Key, _Probed] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._last_upkeep = float("-inf")
        self._published: States = {}
        self.probes_sent = 0

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                # The health loop must outlive any one bad cluster or probe.
                log.exception("health monitor tick failed")
            await asyncio.sleep(TICK_S)

    async def tick(self) -> None:
        now = self._clock()
        clusters = self._clusters()
        for health in clusters.values():
            due = health.next_sweep()
            if due is not None and now >= due:
                health.sweep(now)
        if self._share is None or self._share.lead():
            self._probe_due(clusters, now)
            states = self._states()
        else:
            states = self._follow()
        # Applied every tick, not only on change: a cluster rebuilt by a reload
        # or an xDS update (or resolved after the states were published)
        # learns them at once. Changes were reported by the prober already.
        for key, health in clusters.items():
            found = states.get(key)
            if found:
                health.set_active({a: Health(v) for a, v in found.items()}, report=False)
        if now - self._last_upkeep >= UPKEEP_S:
            self._last_upkeep = now
            await self._upkeep(clusters)

    # -- probing -------------------------------------------------------------

    def _probe_due(self, clusters: Mapping[str, ClusterHealth], now: float) -> None:
        live: set[Key] = set()
        for key, health in clusters.items():
            check = health.health_check
            if check is None:
                continue
            for address in health.addresses:
                probe_key = (key, address)
                live.add(probe_key)
                probed = self._probed.get(probe_key)
                if probed is None or probed.check != check:
                    # A new endpoint is probed at once, then every interval.
                    probed = self._probed[probe_key] = _Probed(check, now)
                if now >= probed.due:
                    probed.due = float("inf")  # until this probe ends
                    self._start(self._probe(key, health, address, probed))
        for gone in set(self._probed) - live:
            del self._probed[gone]

    def _start(self, work: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _probe(self, key: str, health: ClusterHealth, address: str, probed: _Probed) -> None:
        self.probes_sent += 1
        ok = await self._prober.probe(probed.check, address)
        probed.due = next_check(probed.check, self._clock(), self._rng)
        if probed.state.observe(ok):
            health.set_active({address: probed.state.status})
            if self._share is not None:
                self._share.publish(self._states())

    def _states(self) -> States:
        states: States = {}
        for (key, address), probed in self._probed.items():
            if probed.state.status is not Health.UNKNOWN:
                states.setdefault(key, {})[address] = probed.state.status.value
        return states

    def _follow(self) -> States:
        """The prober's latest states (re-read only when its file changed)."""
        assert self._share is not None
        published = self._share.read()
        if published is not None:
            self._published = published
            self._probed.clear()  # should this worker lead later, it starts afresh
        return self._published

    # -- upkeep --------------------------------------------------------------

    async def _upkeep(self, clusters: Mapping[str, ClusterHealth]) -> None:
        addresses = {a for health in clusters.values() for a in health.addresses}
        await self._prober.retain(addresses)
        if self._channels is not None:
            if self._keepalive is not None:
                self._channels.grpc.set_keepalive(self._keepalive())
            await self._channels.retain(addresses)

    async def close(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await self._prober.close()
        if self._share is not None:
            self._share.close()
