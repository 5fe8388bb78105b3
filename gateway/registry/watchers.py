"""A worker's registries: one client per registry, feeding clusters and exposures.

Registry clusters and exposures of the active snapshot subscribe here; a
registry's change (reported from kazoo's thread) is handed to the event
loop, where every subscriber takes the new provider list. A new snapshot
subscribes its own clusters and exposures; the connections stay.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gateway.config import RegistryConfig
from gateway.registry.providers import Provider
from gateway.registry.zookeeper import ZookeeperRegistry

log = logging.getLogger(f"meshgate.{__name__}")

# How long start-up waits for each registry's first connection before serving anyway.
INITIAL_CONNECT_TIMEOUT = 10.0

RegistryKey = tuple[str, str, str, str]  # kind, address, root, discovery
Subscriber = Callable[[Sequence[Provider]], None]


class RegistryClient(Protocol):
    """What a kind of registry offers (ZookeeperRegistry; a fake in the unit tests)."""

    first_read: threading.Event

    @property
    def providers(self) -> Sequence[Provider]: ...
    @property
    def started(self) -> bool: ...
    def discover(self, interface_level: bool, application_level: bool) -> None: ...
    def want_interface(self, interface: str) -> None: ...
    def want_all(self) -> None: ...
    def start(self) -> threading.Event: ...
    def stop(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


# (config, on_change) -> a registry client, not started.
RegistryFactory = Callable[[RegistryConfig, Callable[[], None]], RegistryClient]


def zookeeper_registry(config: RegistryConfig, on_change: Callable[[], None]) -> RegistryClient:
    return ZookeeperRegistry(config.address, config.root, config.session_timeout, on_change)


def registry_key(config: RegistryConfig) -> RegistryKey:
    return config.kind, config.address, config.root, config.discovery


class Registries:
    def __init__(self, factory: RegistryFactory = zookeeper_registry) -> None:
        self._factory = factory
        self._registries: dict[RegistryKey, RegistryClient] = {}
        self._subscribers: dict[RegistryKey, list[Subscriber]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(
        self, config: RegistryConfig, subscriber: Subscriber, interface: str | None
    ) -> None:
        """Feed ``subscriber`` the providers of this registry, now and on every change."""
        key = registry_key(config)
        registry = self._registries.get(key)
        if registry is None:
            registry = self._registries[key] = self._create(key, config)
        if interface is None:
            registry.want_all()
        else:
            registry.want_interface(interface)
        self._subscribers.setdefault(key, []).append(subscriber)
        subscriber(registry.providers)

    def replace_subscribers(self) -> None:
        """Forget every subscriber (a new snapshot subscribes its own)."""
        self._subscribers = {}

    async def start(self) -> None:
        """Connect every registry (bounded wait; an unreachable one keeps retrying)."""
        self._loop = asyncio.get_running_loop()
        events = [(key, registry.start()) for key, registry in self._registries.items()]
        for (kind, address, _root, _), event in events:
            connected = await asyncio.to_thread(event.wait, INITIAL_CONNECT_TIMEOUT)
            if not connected:
                log.warning("registry %s %s not reachable yet; retrying", kind, address)
        # Serve once the providers are read, so the first requests find them.
        for key, registry in self._registries.items():
            if registry.started and not await asyncio.to_thread(
                registry.first_read.wait, INITIAL_CONNECT_TIMEOUT
            ):
                log.warning("registry %s %s: providers not read yet", key[0], key[1])
            self._changed(key)

    def status(self) -> list[dict[str, Any]]:
        return [registry.status() for registry in self._registries.values()]

    def stop(self) -> None:
        registries, self._registries = self._registries, {}
        for registry in registries.values():
            registry.stop()

    def _create(self, key: RegistryKey, config: RegistryConfig) -> RegistryClient:
        registry = self._factory(config, lambda: self._changed_elsewhere(key))
        registry.discover(
            config.discovery in ("interface", "both"), config.discovery in ("application", "both")
        )
        if self._loop is not None:
            registry.start()
        return registry

    def _changed_elsewhere(self, key: RegistryKey) -> None:
        """Called from the registry's thread: continue on the event loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._changed, key)

    def _changed(self, key: RegistryKey) -> None:
        registry = self._registries.get(key)
        if registry is None:
            return
        providers = registry.providers
        for subscriber in self._subscribers.get(key, ()):
            try:
                subscriber(providers)
            except Exception:
                log.exception("registry subscriber failed")
