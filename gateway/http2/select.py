"""Which protocol serves a connection: HTTP/2 or the HTTP/1.1 edge protocol.

uvicorn builds one protocol object per accepted connection from the class
given as ``uvicorn.Config(http=...)``; this is that class. It decides once
per connection and hands the transport over (``transport.set_protocol``):

* over TLS, by ALPN: ``h2`` negotiated → HTTP/2, anything else (``http/1.1``
  or no ALPN) → HTTP/1.1;
* in cleartext, by the first bytes: the HTTP/2 connection preface (h2c with
  prior knowledge, RFC 9113 3.3) → HTTP/2, anything else → HTTP/1.1, which
  sees every byte, so its limits and timers apply as before. A connection
  that sends nothing counts against the connection caps meanwhile, and is
  closed after the listener's header read timeout.

The HTTP/1.1 path costs one comparison of the first bytes per connection.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, cast

from uvicorn.config import Config
from uvicorn.server import ServerState

from gateway.config import ListenerLimitsConfig
from gateway.edge_protocol import EdgeProtocol, LimitsFor, edge_protocol, worker_connection_cap
from gateway.http2.protocol import PREFACE, H2Protocol
from gateway.http2.upgrade import H2cRequest

ALPN_H2 = "h2"


def serving_protocol(limits_for: LimitsFor) -> type[SelectingProtocol]:
    """The per-connection protocol class of one worker; ``limits_for(port)``
    gives each listener's limits (shared by HTTP/1.1 and HTTP/2)."""
    http1 = edge_protocol(limits_for)
    http1.h2c_switch = staticmethod(_switch_to_h2c)
    return type(
        "BoundSelectingProtocol",
        (SelectingProtocol,),
        {"http1": http1, "connection_cap": None},
    )


class SelectingProtocol(asyncio.Protocol):
    http1: ClassVar[type[EdgeProtocol]]
    connection_cap: ClassVar[int | None]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self._first = b""
        self._silence: asyncio.TimerHandle | None = None
        self._port = 0
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; same interface.
        self.transport = transport = cast(asyncio.Transport, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._hand_over(ssl_object.selected_alpn_protocol() == ALPN_H2)
            return
        cls = type(self)
        sockname = transport.get_extra_info("sockname")
        self._port = sockname[1] if isinstance(sockname, tuple) else 0
        limits = self._limits()
        if cls.connection_cap is None:
            cls.connection_cap = worker_connection_cap()
        if (
            cls.http1.open_by_port[self._port] >= limits.max_connections
            or len(self.server_state.connections) >= cls.connection_cap
        ):
            # Over the cap: HTTP/1.1 answers it 503 and closes it (edge_protocol).
            self._hand_over(False)
            return
        # A connection that has not spoken yet counts against the caps too,
        # and a drain closes it (uvicorn calls shutdown()).
        cls.http1.open_by_port[self._port] += 1
        self._counted = True
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self._silence = self.loop.call_later(limits.header_read_timeout, transport.close)

    def data_received(self, data: bytes) -> None:
        first = self._first + data
        if first.startswith(PREFACE):
            self._hand_over(True, first)
        elif PREFACE.startswith(first):
            self._first = first  # a prefix of the preface: wait for the rest
        else:
            self._hand_over(False, first)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_silence()
        self._uncount()

    def shutdown(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _limits(self) -> ListenerLimitsConfig:
        assert self.transport is not None
        sockname = self.transport.get_extra_info("sockname")
        port = sockname[1] if isinstance(sockname, tuple) else 0
        return type(self).http1.limits_for(port)

    def _uncount(self) -> None:
        # The chosen protocol counts the connection from here.
        if self._counted:
            self._counted = False
            type(self).http1.open_by_port[self._port] -= 1
            self.server_state.connections.discard(self)

    def _hand_over(self, http2: bool, first: bytes = b"") -> None:
        self._cancel_silence()
        self._uncount()
        transport = self.transport
        assert transport is not None
        protocol: asyncio.Protocol
        if http2:
            cls = type(self)
            if cls.connection_cap is None:
                cls.connection_cap = worker_connection_cap()
            protocol = H2Protocol(
                self.config,
                self.server_state,
                self.app_state,
                self._limits(),
                cls.http1.open_by_port,
                cls.connection_cap,
                self.loop,
            )
        else:
            protocol = type(self).http1(
                config=self.config,
                server_state=self.server_state,
                app_state=self.app_state,
                _loop=self.loop,
            )
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if first and not transport.is_closing():
            protocol.data_received(first)

    def _cancel_silence(self) -> None:
        if self._silence is not None:
            self._silence.cancel()
            self._silence = None


def _switch_to_h2c(edge: EdgeProtocol, request: H2cRequest, rest: bytes) -> None:
    """An HTTP/1.1 connection whose request asked for h2c goes on as HTTP/2."""
    port = (edge.server[1] or 0) if edge.server else 0
    protocol = H2Protocol(
        edge.config,
        edge.server_state,
        edge.app_state,
        type(edge).limits_for(port),
        type(edge).open_by_port,
        worker_connection_cap(),
        edge.loop,
    )
    edge.transport.set_protocol(protocol)
    protocol.upgraded(edge.transport, request.settings, request.fields, bytes(request.body), rest)
