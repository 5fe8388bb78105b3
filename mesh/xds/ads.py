"""The ADS client as a sans-IO state machine (state of the world, xDS v3).

Inputs: ``watch`` / ``unwatch`` of root resources (listeners), the stream
coming up or going down, each DiscoveryResponse, and the passage of time
(``tick(now)``). Outputs: DiscoveryRequests to send (``take_requests``) and
the names of resources whose value changed.

Dependent resources follow their parents: a listener's route config, a route
config's clusters and a cluster's endpoints are subscribed while some wanted
resource references them, and unsubscribed when none does any more.

Validation follows gRFC A46: a response with invalid resources is NACKed
(previous version, error_detail listing each problem) but its valid resources
are still applied; an invalid resource keeps its last good value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2

from mesh.errors import ResourceError
from mesh.xds import type_urls
from mesh.xds.decode import Decoded, Resource, decode, peek, references
from mesh.xds.resource_state import ResourceEvent, ResourceState, transition

DOES_NOT_EXIST_TIMEOUT_S = 15.0
INVALID_ARGUMENT = 3

Key = tuple[str, str]  # (type_url, name)


@dataclass(slots=True)
class ResourceEntry:
    type_url: str
    name: str
    state: ResourceState = ResourceState.REQUESTED
    value: Decoded | None = None  # last good value
    version: str = ""  # version_info of the response that carried ``value``
    error: str | None = None
    rejected_version: str = ""
    deadline: float | None = None

    @property
    def resource(self) -> Resource | None:
        return None if self.value is None else self.value.resource


@dataclass(slots=True)
class _TypeState:
    version: str = ""
    nonce: str = ""
    pending: bool = False
    error: str | None = None
    sent_names: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """What the client answered to one response, for dumps and tests."""

    type_url: str
    version: str
    nonce: str
    error: str | None


@dataclass(slots=True)
class AdsClient:
    node: base_pb2.Node
    timeout_s: float = DOES_NOT_EXIST_TIMEOUT_S
    # Bootstrap server feature (gRFC A53): absence from an LDS/CDS response
    # no longer deletes a resource the client already has.
    ignore_resource_deletion: bool = False
    connected: bool = False
    _roots: set[Key] = field(default_factory=set)
    _wildcard: set[str] = field(default_factory=set)
    _entries: dict[Key, ResourceEntry] = field(default_factory=dict)
    _types: dict[str, _TypeState] = field(
        default_factory=lambda: {t: _TypeState() for t in type_urls.ALL}
    )
    _node_sent: bool = False
    last_acks: dict[str, Ack] = field(default_factory=dict)
    responses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(type_urls.ALL, 0))
    # Told of each response's verdict: (type_url, accepted); accepted False is a NACK.
    on_update: Callable[[str, bool], None] | None = None

    # -- subscriptions -------------------------------------------------------

    def watch(self, type_url: str, name: str) -> None:
        self._roots.add((type_url, name))
        self._resubscribe()

    def unwatch(self, type_url: str, name: str) -> None:
        self._roots.discard((type_url, name))
        self._resubscribe()

    def watch_all(self, type_url: str) -> None:
        """Wildcard subscription: every resource of the type the server has."""
        self._wildcard.add(type_url)
        self._types[type_url].pending = True

    def entry(self, type_url: str, name: str) -> ResourceEntry | None:
        return self._entries.get((type_url, name))

    def entries(self) -> Iterator[ResourceEntry]:
        return iter(list(self._entries.values()))

    def resource(self, type_url: str, name: str) -> Resource | None:
        entry = self._entries.get((type_url, name))
        return None if entry is None else entry.resource

    # -- stream lifecycle ----------------------------------------------------

    def connection_made(self) -> None:
        """A new ADS stream is up: everything is requested again on it."""
        self.connected = True
        self._node_sent = False
        for type_url, state in self._types.items():
            state.nonce = ""
            state.error = None
            state.sent_names = None
            state.pending = bool(self._names(type_url)) or type_url in self._wildcard

    def connection_lost(self) -> None:
        """Keep every value; stop the does-not-exist timers until a stream is back."""
        self.connected = False
        for entry in self._entries.values():
            entry.deadline = None

    # -- input ---------------------------------------------------------------

    def receive(self, response: discovery_pb2.DiscoveryResponse, now: float) -> set[Key]:
        """Apply one response; returns the keys whose value changed."""
        type_url = response.type_url
        if type_url not in self._types:
            raise ResourceError(f"response for unsupported type {type_url}")
        state = self._types[type_url]
        state.nonce = response.nonce
        self.responses[type_url] += 1
        valid: dict[str, Decoded] = {}
        invalid: dict[str, str] = {}
        errors: list[str] = []
        for packed in response.resources:
            try:
                decoded = decode(type_url, packed)
            except ResourceError as exc:
                errors.append(f"{exc.name or '<unnamed>'}: {exc.problem}")
                if exc.name is not None:
                    invalid[exc.name] = exc.problem
                continue
            if decoded.name in valid or decoded.name in invalid:
                errors.append(f"{decoded.name}: duplicate resource name in one response")
                invalid[decoded.name] = "duplicate resource name in one response"
                valid.pop(decoded.name, None)
                continue
            valid[decoded.name] = decoded
        changed = self._apply(type_url, response.version_info, valid, invalid)
        if errors:
            state.error = "; ".join(errors)
        else:
            state.version = response.version_info
            state.error = None
        self.last_acks[type_url] = Ack(type_url, state.version, state.nonce, state.error)
        if self.on_update is not None:
            self.on_update(type_url, not errors)
        state.pending = True
        self._resubscribe()
        return changed

    def tick(self, now: float) -> set[Key]:
        """Fire due does-not-exist timers."""
        changed: set[Key] = set()
        for key, entry in list(self._entries.items()):
            if entry.deadline is not None and entry.deadline <= now:
                entry.deadline = None
                entry.state = transition(entry.state, ResourceEvent.TIMEOUT)
                changed.add(key)
        if changed:
            self._resubscribe()
        return changed

    def next_deadline(self) -> float | None:
        deadlines = [e.deadline for e in self._entries.values() if e.deadline is not None]
        return min(deadlines, default=None)

    # -- output --------------------------------------------------------------

    def take_requests(self, now: float) -> list[discovery_pb2.DiscoveryRequest]:
        """Requests to send now, parents first; starts timers for what they ask for."""
        if not self.connected:
            return []
        requests = []
        for type_url in type_urls.ALL:
            state = self._types[type_url]
            if not state.pending:
                continue
            state.pending = False
            names = tuple(sorted(self._names(type_url)))
            wildcard = type_url in self._wildcard
            if not state.nonce and state.sent_names == names and not wildcard:
                continue
            request = discovery_pb2.DiscoveryRequest(
                type_url=type_url,
                version_info=state.version,
                response_nonce=state.nonce,
                # Legacy wildcard: no names (istiod reads '*' as a literal name).
                resource_names=[] if wildcard else names,
            )
            if state.error is not None:
                request.error_detail.CopyFrom(
                    status_pb2.Status(code=INVALID_ARGUMENT, message=state.error)
                )
                state.error = None
            if not self._node_sent:
                request.node.CopyFrom(self.node)
                self._node_sent = True
            state.sent_names = names
            self._start_timers(type_url, now)
            requests.append(request)
        return requests

    # -- internals -----------------------------------------------------------

    def _apply(
        self, type_url: str, version: str, valid: dict[str, Decoded], invalid: dict[str, str]
    ) -> set[Key]:
        changed: set[Key] = set()
        wildcard = type_url in self._wildcard
        wanted = self._names(type_url)
        for name, decoded in valid.items():
            key = (type_url, name)
            if name not in wanted and not wildcard:
                continue  # not asked for: ignored, as gRPC does
            entry = self._entries.setdefault(key, ResourceEntry(type_url, name))
            if entry.value is None or _differs(entry.value.message, decoded.message):
                # Unchanged resources keep their object, so views built on it
                # (and their pickers' state) survive a re-push.
                entry.value = decoded
                changed.add(key)
            entry.state = transition(entry.state, ResourceEvent.VALID)
            entry.version, entry.error, entry.deadline = version, None, None
        for name, problem in invalid.items():
            key = (type_url, name)
            if name not in wanted and not wildcard:
                continue
            entry = self._entries.setdefault(key, ResourceEntry(type_url, name))
            entry.state = transition(entry.state, ResourceEvent.INVALID)
            entry.error, entry.rejected_version, entry.deadline = problem, version, None
        if type_url in type_urls.ABSENCE_MEANS_DELETION and not self.ignore_resource_deletion:
            present = valid.keys() | invalid.keys()
            for key, entry in list(self._entries.items()):
                if key[0] != type_url or key[1] in present:
                    continue
                if entry.value is None and entry.state is not ResourceState.NACKED:
                    continue
                entry.state = transition(entry.state, ResourceEvent.ABSENT)
                entry.value, entry.error = None, None
                changed.add(key)
        return changed

    def _names(self, type_url: str) -> set[str]:
        return {name for (t, name) in self._wanted() if t == type_url}

    def _wanted(self) -> set[Key]:
        """Roots, wildcard results, and everything they reference, transitively."""
        wanted = set(self._roots)
        wanted.update(k for k in self._entries if k[0] in self._wildcard)
        frontier = list(wanted)
        while frontier:
            entry = self._entries.get(frontier.pop())
            if entry is None or entry.resource is None:
                continue
            for ref in references(entry.resource):
                if ref not in wanted:
                    wanted.add(ref)
                    frontier.append(ref)
        return wanted

    def _resubscribe(self) -> None:
        wanted = self._wanted()
        for key in list(self._entries):
            if key not in wanted:
                del self._entries[key]
                self._types[key[0]].pending = True
        for key in wanted:
            if key not in self._entries:
                self._entries[key] = ResourceEntry(*key)
                self._types[key[0]].pending = True

    def _start_timers(self, type_url: str, now: float) -> None:
        for (t, _), entry in self._entries.items():
            if t == type_url and entry.state is ResourceState.REQUESTED and entry.deadline is None:
                entry.deadline = now + self.timeout_s


def _differs(old: Message, new: Message) -> bool:
    before: bytes = old.SerializeToString(deterministic=True)
    after: bytes = new.SerializeToString(deterministic=True)
    return before != after


__all__ = ["Ack", "AdsClient", "ResourceEntry", "peek"]
