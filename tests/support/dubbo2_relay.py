"""A TCP relay in front of a dubbo2 provider that records the frames crossing it.

Bytes pass through unchanged in both directions; a copy of each direction is
decoded with meshgate's frame decoder, so a test sees the attachments the
gateway sent with each request and those the provider sent back.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from gateway.dubbo.protocol import FrameDecoder, Request, Response


@dataclass
class Dubbo2Relay:
    address: str
    requests: list[Request] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, frame: Any) -> None:
        with self._lock:
            if isinstance(frame, Request):
                self.requests.append(frame)
            elif isinstance(frame, Response):
                self.responses.append(frame)

    def invocations(self, method: str) -> list[Request]:
        """Requests for ``method`` (generic calls: the invoked method, not $invoke)."""
        with self._lock:
            found = list(self.requests)
        return [r for r in found if r.invocation.args and r.invocation.args[0] == method]

    def response_to(self, request: Request) -> Response | None:
        with self._lock:
            return next((r for r in self.responses if r.request_id == request.request_id), None)


def _pump(source: socket.socket, sink: socket.socket, relay: Dubbo2Relay) -> None:
    decoder = FrameDecoder()
    try:
        while data := source.recv(65536):
            # Recorded before it is passed on: once the other side has a frame,
            # the test sees it too.
            for frame in decoder.feed(data):
                relay.record(frame)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def dubbo2_relay(provider: str) -> Iterator[Dubbo2Relay]:
    """A relay on a free loopback port to ``provider`` (host:port)."""
    host, port = provider.rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", 0))
    relay = Dubbo2Relay(f"127.0.0.1:{listener.getsockname()[1]}")
    sockets: list[socket.socket] = [listener]

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((host, int(port)))
            sockets.extend((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink, relay), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield relay
    finally:
        for sock in sockets:
            sock.close()
