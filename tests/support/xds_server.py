"""The tests' own ADS management server (state of the world, xDS v3).

A synchronous ``grpc.server`` on background threads, so that it runs beside
whatever event loop the test uses (MeshCore's grpc.aio one, or a grpcio
client in a subprocess). Tests set resources, push, hold back a type, drop
every stream, stop and restart the server, and assert on the recorded
requests (ACK/NACK: version, nonce, error_detail)::

    with XdsServer() as xds:
        xds.set(LISTENER, [b.listener("shop.default.svc.cluster.local:50051")])
        ...
        xds.wait_for(lambda r: r.type_url == CLUSTER and r.error is not None)
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf.message import Message

from tests.support.net import free_port
from tests.support.xds_builders import packed

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINTS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
WILDCARD_TYPES = (LISTENER, CLUSTER)
_ABORT = object()


@dataclass(frozen=True)
class Recorded:
    """One DiscoveryRequest the server received."""

    stream: int
    type_url: str
    version: str
    nonce: str
    names: tuple[str, ...]
    error: str | None
    node_id: str

    @property
    def is_nack(self) -> bool:
        return self.error is not None


def _name_of(message: Message) -> str:
    return str(getattr(message, "name", "") or getattr(message, "cluster_name", ""))


class _Stream:
    def __init__(self, number: int, server: XdsServer) -> None:
        self.number = number
        self.server = server
        self.outbox: queue.Queue[object] = queue.Queue()
        self.names: dict[str, set[str] | None] = {}  # None: wildcard

    def on_request(self, request: discovery_pb2.DiscoveryRequest) -> None:
        error = request.error_detail.message if request.HasField("error_detail") else None
        self.server.record(
            Recorded(
                self.number,
                request.type_url,
                request.version_info,
                request.response_nonce,
                tuple(request.resource_names),
                error,
                request.node.id,
            )
        )
        type_url = request.type_url
        first = type_url not in self.names
        wanted: set[str] | None = set(request.resource_names)
        if first and not request.resource_names and type_url in WILDCARD_TYPES:
            wanted = None
        if not first and self.names[type_url] is None and not request.resource_names:
            wanted = None
        if first or wanted != self.names[type_url]:
            self.names[type_url] = wanted
            self.send(type_url)

    def send(self, type_url: str) -> None:
        response = self.server.response_for(type_url, self.names.get(type_url, set()))
        if response is not None:
            self.outbox.put(response)


class _Servicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, server: XdsServer) -> None:
        self.server = server

    def StreamAggregatedResources(
        self,
        request_iterator: Iterator[discovery_pb2.DiscoveryRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[discovery_pb2.DiscoveryResponse]:
        stream = self.server.open_stream()

        def read() -> None:
            try:
                for request in request_iterator:
                    stream.on_request(request)
            except Exception:  # the client went away
                pass
            stream.outbox.put(None)

        threading.Thread(target=read, daemon=True).start()
        try:
            while True:
                item = stream.outbox.get()
                if item is None:
                    return
                if item is _ABORT:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "stream dropped by the test")
                assert isinstance(item, discovery_pb2.DiscoveryResponse)
                yield item
        finally:
            self.server.close_stream(stream)


class XdsServer:
    def __init__(self, port: int | None = None, *, wrap_resources: bool = True) -> None:
        self.port = port or free_port()
        self.wrap_resources = wrap_resources  # istiod wraps in discovery.v3.Resource
        self.requests: list[Recorded] = []
        self._resources: dict[str, dict[str, Message]] = {
            t: {} for t in (LISTENER, ROUTE, CLUSTER, ENDPOINTS)
        }
        self._versions: dict[str, int] = dict.fromkeys(self._resources, 0)
        self._held: set[str] = set()
        self._streams: dict[int, _Stream] = {}
        self._numbers = itertools.count(1)
        self._nonces = itertools.count(1)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._grpc: grpc.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> XdsServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_Servicer(self), server)
        server.add_insecure_port(self.address)
        server.start()
        self._grpc = server
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=0).wait(5)
            self._grpc = None
        with self._lock:
            for stream in self._streams.values():
                stream.outbox.put(None)
            self._streams.clear()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> XdsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def bootstrap(
        self, node_id: str = "sidecar~127.0.0.1~client.default~default.svc.cluster.local"
    ) -> dict[str, Any]:
        """A GRPC_XDS_BOOTSTRAP document pointing at this server."""
        return {
            "xds_servers": [
                {
                    "server_uri": self.address,
                    "channel_creds": [{"type": "insecure"}],
                    "server_features": ["xds_v3"],
                }
            ],
            "node": {"id": node_id, "metadata": {"GENERATOR": "grpc"}},
        }

    # -- state ---------------------------------------------------------------

    def set(self, type_url: str, messages: Iterable[Message], *, push: bool = True) -> None:
        """Replace every resource of one type (a new version), then push it."""
        with self._lock:
            self._resources[type_url] = {_name_of(m): m for m in messages}
            self._versions[type_url] += 1
        if push:
            self.push(type_url)

    def update(self, type_url: str, messages: Iterable[Message], *, push: bool = True) -> None:
        """Add or replace some resources of one type, keeping the others."""
        with self._lock:
            self._resources[type_url].update({_name_of(m): m for m in messages})
            self._versions[type_url] += 1
        if push:
            self.push(type_url)

    def remove(self, type_url: str, name: str) -> None:
        with self._lock:
            self._resources[type_url].pop(name, None)
            self._versions[type_url] += 1
        self.push(type_url)

    def hold(self, type_url: str) -> None:
        """Answer nothing of this type until release()."""
        with self._lock:
            self._held.add(type_url)

    def release(self, type_url: str) -> None:
        with self._lock:
            self._held.discard(type_url)
        self.push(type_url)

    def push(self, *type_urls: str) -> None:
        with self._lock:
            for stream in self._streams.values():
                for type_url in type_urls or tuple(stream.names):
                    if type_url in stream.names:
                        stream.send(type_url)

    def drop_streams(self) -> None:
        """Fail every open stream with UNAVAILABLE, as a crashing server would."""
        with self._lock:
            for stream in self._streams.values():
                stream.outbox.put(_ABORT)

    def version(self, type_url: str) -> str:
        return str(self._versions[type_url])

    # -- recording ------------------------------------------------------------

    def record(self, request: Recorded) -> None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[Recorded], bool], timeout: float = 10.0) -> Recorded:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for request in self.requests:
                    if predicate(request):
                        return request
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching request in {timeout}s: {self.requests[-8:]}")
                self._changed.wait(remaining)

    def acked(self, type_url: str, version: str | None = None) -> Callable[[Recorded], bool]:
        version = version or self.version(type_url)
        return lambda r: (
            r.type_url == type_url and r.version == version and r.error is None and bool(r.nonce)
        )

    @property
    def open_streams(self) -> int:
        with self._lock:
            return len(self._streams)

    # -- internals used by streams -------------------------------------------

    def open_stream(self) -> _Stream:
        with self._lock:
            stream = _Stream(next(self._numbers), self)
            self._streams[stream.number] = stream
            return stream

    def close_stream(self, stream: _Stream) -> None:
        with self._lock:
            self._streams.pop(stream.number, None)

    def response_for(
        self, type_url: str, names: AbstractSet[str] | None
    ) -> discovery_pb2.DiscoveryResponse | None:
        with self._lock:
            if type_url in self._held or type_url not in self._resources:
                return None
            available = self._resources[type_url]
            chosen = [m for n, m in sorted(available.items()) if names is None or n in names]
            response = discovery_pb2.DiscoveryResponse(
                type_url=type_url,
                version_info=str(self._versions[type_url]),
                nonce=f"n{next(self._nonces)}",
            )
            for message in chosen:
                if self.wrap_resources:
                    wrapper = discovery_pb2.Resource(
                        name=_name_of(message), resource=packed(message)
                    )
                    response.resources.append(packed(wrapper))
                else:
                    response.resources.append(packed(message))
            return response


def serve_service(xds: XdsServer, service: Any, *routes: Any) -> None:
    """Publish a whole Istio-shaped service (see xds_builders.Service)."""
    xds.set(LISTENER, [service.listener()])
    xds.set(ROUTE, [service.route_config(*routes)])
    xds.set(CLUSTER, service.clusters())
    xds.set(ENDPOINTS, service.endpoints())
