"""The live view of one ZooKeeper registry, through kazoo.

Every node of interest is watched (kazoo's DataWatch and ChildrenWatch,
re-armed by kazoo after a reconnection or a new session), and each change
recomputes the provider list and calls ``on_change`` from kazoo's thread.

An outage keeps the last known providers: nothing is cleared when the
connection is suspended or the session lost; the state is logged and shown
by :meth:`ZookeeperRegistry.status`. A new session re-reads every watched
node, so providers that left during the outage leave then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.protocol.states import KazooState
from kazoo.recipe.watchers import ChildrenWatch, DataWatch
from kazoo.retry import KazooRetry

from gateway.registry import layout
from gateway.registry.providers import Provider, parse_provider_url, with_types

log = logging.getLogger(f"meshgate.{__name__}")

ChildrenCallback = Callable[[list[str] | None], None]
ProviderKey = tuple[str, str, int, str, str, str]


class ZookeeperRegistry:
    """Providers found in one ZooKeeper under one root, kept current by watches."""

    def __init__(
        self,
        hosts: str,
        root: str = "dubbo",
        session_timeout: float = 10.0,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.hosts = hosts
        self.root = root.strip("/") or "dubbo"
        self._on_change = on_change
        # Reconnect quickly and forever: a registry outage must not need a restart.
        retry = KazooRetry(max_tries=-1, delay=0.1, max_delay=2.0)
        self._client = KazooClient(
            hosts=hosts, timeout=session_timeout, connection_retry=retry, command_retry=None
        )
        self._client.add_listener(self._state_changed)
        self._lock = threading.RLock()
        self._stopped = False
        self._connected = False
        self._outage_since: float | None = None
        self._last_error = ""
        self._sessions_lost = 0
        self._want_all = False
        self._interface_level = True
        self._application_level = True
        self._interfaces: set[str] = set()
        self._by_interface: dict[str, tuple[Provider, ...]] = {}
        self._by_application: dict[str, tuple[Provider, ...]] = {}
        self._instances: dict[str, list[str]] = {}  # application -> instance node names
        self._metadata: dict[tuple[str, str], tuple[dict[str, Any], ...]] = {}
        self._definitions: dict[str, dict[str, list[list[str]]]] = {}
        self._providers: tuple[Provider, ...] = ()
        self._installed = False
        self._watched: set[str] = set()
        self._started: threading.Event | None = None
        # Set once the first read of every watched node is done (kazoo's
        # watches read synchronously when armed).
        self.first_read = threading.Event()

    # -- what to watch ---------------------------------------------------

    def discover(self, interface_level: bool, application_level: bool) -> None:
        """Which registrations to read (both by default); set before start."""
        self._interface_level = interface_level
        self._application_level = application_level

    def want_interface(self, interface: str) -> None:
        with self._lock:
            if interface in self._interfaces:
                return
            self._interfaces.add(interface)
        if self._installed:
            self._client.handler.spawn(self._watch_interface, interface)

    def want_all(self) -> None:
        with self._lock:
            if self._want_all:
                return
            self._want_all = True
        if self._installed:
            self._client.handler.spawn(self._watch_everything)

    # -- life cycle -------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started is not None

    def start(self) -> threading.Event:
        """Connect in the background; the event is set once connected."""
        if self._started is None:
            self._started = self._client.start_async()
        return self._started

    def stop(self) -> None:
        self._stopped = True
        try:
            self._client.stop()
            self._client.close()
        except KazooException as exc:
            log.debug("closing %s: %s", self.hosts, exc)

    @property
    def providers(self) -> tuple[Provider, ...]:
        return self._providers

    def status(self) -> dict[str, Any]:
        return {
            "kind": "zookeeper",
            "address": self.hosts,
            "root": self.root,
            "connected": self._connected,
            "outage_seconds": (
                round(time.monotonic() - self._outage_since, 1)
                if self._outage_since is not None
                else None
            ),
            "last_known_providers": len(self._providers),
            # Expired sessions; each was followed by a new one and a full re-read.
            "sessions_lost": self._sessions_lost,
            "last_error": self._last_error or None,
        }

    def _state_changed(self, state: str) -> None:
        if state == KazooState.CONNECTED:
            was_down = self._outage_since is not None
            self._connected = True
            self._outage_since = None
            if was_down:
                log.warning("registry zookeeper %s reconnected", self.hosts)
            if not self._installed:
                self._installed = True
                self._client.handler.spawn(self._install)
            return
        self._connected = False
        if state == KazooState.LOST and not self._stopped:
            self._sessions_lost += 1
        if self._outage_since is None and self._installed:
            self._outage_since = time.monotonic()
        what = "session lost" if state == KazooState.LOST else "connection suspended"
        log.warning(
            "registry zookeeper %s: %s; keeping %d last known providers",
            self.hosts,
            what,
            len(self._providers),
        )

    def _install(self) -> None:
        try:
            if self._want_all:
                self._watch_everything()
            for interface in list(self._interfaces):
                self._watch_interface(interface)
        except KazooException as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.warning("registry zookeeper %s: first read failed: %s", self.hosts, exc)
        finally:
            self.first_read.set()

    # -- watches ----------------------------------------------------------

    def _watch_everything(self) -> None:
        if self._interface_level:
            self._watch_children(f"/{self.root}", self._root_children)
        if self._application_level:
            self._watch_children(layout.SERVICES, self._applications_children)

    def _root_children(self, children: list[str] | None) -> None:
        for name in children or ():
            if name not in layout.NOT_INTERFACES:
                self._watch_interface(name)

    def _applications_children(self, children: list[str] | None) -> None:
        for application in children or ():
            self._watch_application(application)

    def _watch_interface(self, interface: str) -> None:
        if not self._mark(f"interface:{interface}"):
            return
        if self._interface_level:
            self._watch_children(
                layout.providers_path(self.root, interface),
                lambda children: self._interface_providers(interface, children),
            )
        if self._application_level:

            def mapping(data: bytes | None, stat: Any, event: Any = None) -> bool | None:
                if self._stopped:
                    return False
                for application in layout.parse_mapping(data or b""):
                    self._watch_application(application)
                return None

            DataWatch(self._client, layout.mapping_path(self.root, interface), mapping)

    def _watch_application(self, application: str) -> None:
        if not self._application_level or not self._mark(f"application:{application}"):
            return
        self._watch_children(
            layout.instances_path(application),
            lambda children: self._application_instances(application, children),
        )

    def _mark(self, key: str) -> bool:
        with self._lock:
            if key in self._watched:
                return False
            self._watched.add(key)
            return True

    def _watch_children(self, path: str, callback: ChildrenCallback) -> None:
        """Children of a node that may not exist yet, or may go and come back."""
        current: list[ChildrenWatch | None] = [None]

        def children_changed(children: list[str]) -> bool | None:
            if self._stopped:
                return False
            self._guarded(callback, children)
            return None

        def node_changed(data: bytes | None, stat: Any, event: Any = None) -> bool | None:
            if self._stopped:
                return False
            if stat is None:
                current[0] = None
                self._guarded(callback, None)
            elif current[0] is None or current[0]._stopped:
                current[0] = ChildrenWatch(self._client, path, children_changed)
            return None

        DataWatch(self._client, path, node_changed)

    def _guarded(self, callback: ChildrenCallback, children: list[str] | None) -> None:
        try:
            callback(children)
        except KazooException as exc:
            # Kazoo re-arms the watch on reconnection; the next event reads again.
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.warning("registry zookeeper %s: %s", self.hosts, self._last_error)

    # -- reading nodes ----------------------------------------------------

    def _interface_providers(self, interface: str, children: list[str] | None) -> None:
        found = []
        for child in children or ():
            provider = parse_provider_url(child)
            if provider is not None and provider.protocol in ("tri", "dubbo"):
                found.append(self._typed(provider))
        with self._lock:
            self._by_interface[interface] = tuple(found)
        self._changed()

    def _application_instances(self, application: str, children: list[str] | None) -> None:
        self._instances[application] = list(children or ())
        found: list[Provider] = []
        for child in children or ():
            path = f"{layout.instances_path(application)}/{child}"
            self._watch_instance(application, path)
            data = self._get(path)
            instance = layout.parse_instance(data) if data is not None else None
            if instance is None:
                continue
            services = self._revision(instance.application, instance.revision)
            for provider in layout.instance_providers(instance, services):
                if provider.protocol in ("tri", "dubbo"):
                    found.append(self._typed(provider))
        with self._lock:
            self._by_application[application] = tuple(found)
        self._changed()

    def _watch_instance(self, application: str, path: str) -> None:
        """An instance's node changes in place when its revision changes: read the
        application's instances again then (the first call is the arming read)."""
        if not self._mark(f"instance:{path}"):
            return
        armed = [False]

        def instance_changed(data: bytes | None, stat: Any, event: Any = None) -> bool | None:
            if self._stopped:
                return False
            if stat is None:
                # Gone: the children watch reads the application again; a
                # provider that comes back at this address is watched anew.
                with self._lock:
                    self._watched.discard(f"instance:{path}")
                return False
            if armed[0]:
                self._client.handler.spawn(
                    self._guarded,
                    lambda _: self._application_instances(
                        application, self._instances.get(application)
                    ),
                    None,
                )
            armed[0] = True
            return None

        DataWatch(self._client, path, instance_changed)

    def _revision(self, application: str, revision: str) -> tuple[dict[str, Any], ...]:
        key = (application, revision)
        cached = self._metadata.get(key)
        if cached is not None:
            return cached
        services: tuple[dict[str, Any], ...] = ()
        for path in layout.revision_paths(self.root, application, revision):
            data = self._get(path)
            if data is not None:
                services = layout.parse_metadata(data)
                break
        if services:
            self._metadata[key] = services
        return services

    def _typed(self, provider: Provider) -> Provider:
        path = layout.definition_path(self.root, provider)
        signatures = self._definitions.get(path)
        if signatures is None:
            data = self._get(path)
            signatures = layout.parse_definition(data) if data is not None else {}
            if data is not None:
                self._definitions[path] = signatures
        return with_types(provider, signatures) if signatures else provider

    def _get(self, path: str) -> bytes | None:
        try:
            data, _ = self._client.get(path)
        except NoNodeError:
            return None
        return data if isinstance(data, bytes) else None

    def _changed(self) -> None:
        with self._lock:
            unique: dict[ProviderKey, Provider] = {}
            for group in (*self._by_interface.values(), *self._by_application.values()):
                for p in group:
                    key = (p.protocol, p.host, p.port, p.interface, p.group, p.version)
                    known = unique.get(key)
                    if known is None or (p.parameter_types and not known.parameter_types):
                        unique[key] = p
            self._providers = tuple(unique.values())
        self._on_change()
