"""The gateway's side of the mesh core: one MeshCore per worker.

Routes whose cluster is ``xds:///HOST:PORT`` are resolved by the mesh core
exactly as a proxyless gRPC client resolves that target. ``xds:///*`` picks
the target by the service the request names (the gRPC service, or the Dubbo
interface), through ``mesh.interfaces`` and, with ``discover_interfaces``,
what the mesh core learned by itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from enum import Enum

from gateway.config import MeshConfig
from gateway.errors import RouteNotFound, UpstreamUnavailable
from gateway.metrics import count_xds_update
from gateway.upstream.clusters import CallPlan
from gateway.upstream.health_events import report_health_event
from mesh import MeshCore, TargetNotReady, fault_decision, load_bootstrap
from mesh.hashing import RequestAttributes
from mesh.retry import RetryPolicy

log = logging.getLogger(f"meshgate.{__name__}")

# How long start-up waits for the xDS chain of each target before serving anyway
# (the default of mesh.xds.initial_fetch_timeout).
INITIAL_FETCH_TIMEOUT = 10.0


class TargetState(Enum):
    """Where one xds:/// target stands, for readiness (gateway.readiness)."""

    WAITING = "waiting for its first resources"
    RESOLVED = "resolved"
    # Envoy's rule: after initial_fetch_timeout the gateway is ready anyway,
    # and the target keeps resolving in the background.
    TIMED_OUT = "initial fetch timed out; still resolving"


class MeshClient:
    def __init__(self, config: MeshConfig, rng: random.Random | None = None) -> None:
        assert config.xds is not None
        self.core = MeshCore(
            load_bootstrap(config.xds.bootstrap),
            on_health_event=report_health_event,
            on_xds_update=count_xds_update,
        )
        self.interfaces: dict[str, str] = dict(config.interfaces)
        self._discover = config.discover_interfaces
        self._rng = rng or random.Random()
        self.initial_fetch_timeout = config.xds.initial_fetch_timeout
        self._timed_out: set[str] = set()

    def target_states(self) -> dict[str, TargetState]:
        """Each watched target's state. Once resolved, a target keeps its last
        known good resources through a control-plane outage, so it stays resolved."""
        states: dict[str, TargetState] = {}
        for target in self.core.targets:
            if self.core.view(target) is not None:
                states[target] = TargetState.RESOLVED
            elif target in self._timed_out:
                states[target] = TargetState.TIMED_OUT
            else:
                states[target] = TargetState.WAITING
        return states

    async def start(self, targets: set[str]) -> None:
        await self.core.start()
        if self._discover:
            try:
                found = await self.core.discover_interfaces(self.initial_fetch_timeout)
            except Exception as exc:
                log.warning("interface discovery failed: %s", exc)
            else:
                # Configured mappings win over discovered ones.
                self.interfaces = {**found, **self.interfaces}
                targets |= set(found.values())
        await self.watch(targets)

    async def watch(self, targets: set[str]) -> None:
        for target in targets:
            self.core.watch(target)
        results = await asyncio.gather(
            *(self.core.wait_ready(t, self.initial_fetch_timeout) for t in targets),
            return_exceptions=True,
        )
        for target, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                self._timed_out.add(target)
                log.warning("xds:///%s not resolved yet: %s", target, result)

    async def stop(self) -> None:
        await self.core.stop()

    def target_for(self, service: str) -> str:
        found = self.interfaces.get(service)
        if found is None:
            raise RouteNotFound(f"no mesh target serves {service!r} (mesh.interfaces)")
        return found

    def plan(
        self,
        target: str,
        rpc_path: str,
        headers: Mapping[str, str],
        attributes: RequestAttributes,
        retry: RetryPolicy | None,
    ) -> CallPlan:
        """The mesh's decision for one request; ``retry`` (the route's) wins over RDS's."""
        try:
            decision = self.core.route(target, rpc_path, headers, attributes)
        except TargetNotReady as exc:
            raise UpstreamUnavailable(str(exc)) from None
        if decision is None:
            raise UpstreamUnavailable(f"xds:///{target}: no route matches {rpc_path}")
        if (
            decision.error
            or decision.endpoint is None
            or decision.balancer is None
            or decision.requests is None
        ):
            raise UpstreamUnavailable(f"xds:///{target}: {decision.error or 'no endpoint'}")
        delay, abort = fault_decision(decision.fault, self._rng, headers)
        return CallPlan(
            cluster=decision.cluster or target,
            first=decision.endpoint,
            balancer=decision.balancer,
            requests=decision.requests,
            hash_key=decision.hash_key,
            timeout=decision.timeout_s,
            retry=retry or decision.retry,
            delay=delay,
            abort=abort,
            health=decision.health,
            retries=decision.retries,
            security=decision.security,
        )
