"""The asyncio protocol of one HTTP/2 connection, driving ``h2``'s state machine.

Each request stream runs the ASGI app in its own task, concurrently; the
connection only moves bytes and events (gateway.http2.stream holds the
per-stream state). Per listener (``limits:``, docs/limits.md):

* SETTINGS_MAX_CONCURRENT_STREAMS is ``max_concurrent_streams``; a stream
  past it is refused with RST_STREAM(REFUSED_STREAM) after its header block
  was decoded (so the HPACK state stays in step), which clients retry. h2
  would make it a connection error instead, so its own check is set out of
  reach once the SETTINGS frame has gone.
* header count, header bytes and target length as on HTTP/1.1 (431, 414);
  SETTINGS_MAX_HEADER_LIST_SIZE advertises them, and a header block far past
  them (a decompression bomb) is a connection error in HPACK.
* the idle timeout (no stream open) ends the connection with GOAWAY; so does
  the server's shutdown, gracefully: GOAWAY names the last stream taken and
  the streams in flight finish (uvicorn waits for them up to the drain
  timeout, as for HTTP/1.1).
* the body read timeout, from a request's headers to its end, while the
  response has not started; gRPC requests (``application/grpc*``) are
  streams by design and bounded by their own deadlines instead.
* the connection cap of the listener and worker, shared with HTTP/1.1:
  past it the connection gets GOAWAY before any stream.

Windows: each stream may receive STREAM_WINDOW bytes ahead of the app, the
connection CONNECTION_WINDOW; that bounds what a connection buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame
from uvicorn.config import Config
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl
from uvicorn.server import ServerState

from gateway.config import ListenerLimitsConfig
from gateway.errors import GatewayError
from gateway.http2.messages import Fields, error_fields, grpc_error_fields, is_grpc, request_head
from gateway.http2.stream import Stream
from gateway.interrupts import BODY_TIMEOUT, SCOPE_KEY

log = logging.getLogger(f"meshgate.{__name__}")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 4 << 20
DEFAULT_WINDOW = 65_535
# SETTINGS_MAX_HEADER_LIST_SIZE counts 32 bytes per field beyond name and value.
FIELD_OVERHEAD = 32
# HPACK refuses (connection error) a block this many times the advertised size.
HARD_HEADER_FACTOR = 4
UNREACHABLE_STREAMS = 2**31 - 1


class H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection; built by gateway.http2.select after the choice."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        limits: ListenerLimitsConfig,
        open_by_port: Counter[int],
        connection_cap: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.config = config
        self.app = config.loaded_app
        self.loop = loop
        self.server_state = server_state
        self.app_state = app_state
        self.limits = limits
        self._open_by_port = open_by_port
        self._connection_cap = connection_cap
        self._port = 0
        self._counted = False
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.streams: dict[int, Stream] = {}
        self._heads: list[Stream] = []
        self._flush_scheduled = False
        self._write_paused: asyncio.Future[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._goaway_sent = False
        self._last_stream_id = 0
        self._closed = False
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"

    # -- connection ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; same interface.
        self.transport = transport = cast(asyncio.Transport, transport)
        self._attach(transport)
        self._start_h2(None)
        self._refuse_past_the_cap()

    def upgraded(
        self,
        transport: asyncio.BaseTransport,
        settings: bytes,
        fields: list[tuple[bytes, bytes]],
        body: bytes,
        rest: bytes,
    ) -> None:
        """Take over a connection whose HTTP/1.1 request asked for h2c
        (gateway.http2.upgrade): 101 is sent, the request becomes stream 1."""
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.write(SWITCHING)
        self._attach(transport)
        self._start_h2(settings)
        self._on_request(1, fields, body)
        self._refuse_past_the_cap()
        if rest:
            self.data_received(rest)

    def _attach(self, transport: asyncio.Transport) -> None:
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self.server = get_local_addr(transport)
        self.client = get_remote_addr(transport)
        self.scheme = "https" if is_ssl(transport) else "http"
        self._port = port = (self.server[1] or 0) if self.server else 0
        self._open_by_port[port] += 1
        self._counted = True

    def _refuse_past_the_cap(self) -> None:
        port = self._port
        if (
            self._open_by_port[port] > self.limits.max_connections
            or len(self.server_state.connections) > self._connection_cap
        ):
            self._go_away(ErrorCodes.NO_ERROR, b"too many connections")
            return
        if not self.streams:
            self._arm_idle_timer()

    def _start_h2(self, upgrade_settings: bytes | None) -> None:
        limits = self.limits
        header_list = limits.max_request_header_bytes + FIELD_OVERHEAD * limits.max_request_headers
        advertised = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: header_list,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        }
        conn = self.h2
        conn.local_settings = h2.settings.Settings(client=False, initial_values=advertised)
        if upgrade_settings is None:
            conn.initiate_connection()
        else:
            # The client's SETTINGS came in HTTP2-Settings; stream 1 is its request.
            conn.initiate_upgrade_connection(upgrade_settings)
        conn.increment_flow_control_window(CONNECTION_WINDOW - DEFAULT_WINDOW)
        # Refusing past the limit is ours (a stream error); h2's own check
        # would end the connection.
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                **advertised,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: UNREACHABLE_STREAMS,
            },
        )
        conn.decoder.max_header_list_size = header_list * HARD_HEADER_FACTOR
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server_state.connections.discard(self)
        if self._counted:
            self._counted = False
            self._open_by_port[self._port] -= 1
        self._cancel_idle_timer()
        for stream in list(self.streams.values()):
            stream.on_gone()
        if self._write_paused is not None and not self._write_paused.done():
            self._write_paused.set_result(None)
        self._write_paused = None

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        if self._write_paused is None:
            self._write_paused = self.loop.create_future()

    def resume_writing(self) -> None:
        waiter, self._write_paused = self._write_paused, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def shutdown(self) -> None:
        """uvicorn's drain: no new streams; the open ones finish, then close."""
        if not self._closed:
            self._go_away(ErrorCodes.NO_ERROR, b"")

    # -- incoming --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._protocol_error(exc)
            return
        for event in events:
            self._on_event(event)
        self._flush()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            size = event.flow_controlled_length or 0
            if stream is None:
                self.acknowledge(event.stream_id or 0, size)
            else:
                stream.on_data(event.data or b"", size)
        elif isinstance(event, h2.events.RequestReceived):
            self._on_request(event.stream_id or 0, event.headers or [])
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.on_end()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.on_gone()
        elif isinstance(event, h2.events.WindowUpdated):
            if not event.stream_id:
                for stream in self.streams.values():
                    stream.on_window()
            else:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.on_window()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for stream in self.streams.values():
                stream.on_window()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._on_peer_goaway(event)

    def _on_request(
        self, stream_id: int, fields: list[tuple[bytes, bytes]], body: bytes | None = None
    ) -> None:
        """A new stream; ``body``: the whole body of an upgraded HTTP/1.1 request."""
        if self._goaway_sent or self._open_streams() >= self.limits.max_concurrent_streams:
            # Past the last stream our GOAWAY named, or over the limit: the
            # client may retry it (elsewhere).
            self.reset(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        try:
            head = request_head(fields, self.limits)
        except GatewayError as error:
            self.answer_error(stream_id, error, is_grpc(fields))
            return
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.4"},
            "http_version": "2",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": head.method,
            "root_path": self.config.root_path,
            "path": head.path,
            "raw_path": head.raw_path,
            "query_string": head.query_string,
            "headers": head.headers,
            "extensions": {"http.response.trailers": {}},
            "state": self.app_state.copy(),
        }
        stream = Stream(self, stream_id, scope)
        self.streams[stream_id] = stream
        self._last_stream_id = max(self._last_stream_id, stream_id)
        self._cancel_idle_timer()
        self.server_state.total_requests += 1
        task = self.loop.create_task(self._run(stream))
        stream.task = task
        self.server_state.tasks.add(task)
        task.add_done_callback(self.server_state.tasks.discard)
        if body is not None:
            # Read over HTTP/1.1 before the switch: nothing to acknowledge.
            stream.on_data(body, 0)
            stream.on_end()
        elif not _streams_by_design(head.headers):
            # Armed now; the request's end (or the response's start) disarms it.
            stream.body_timer = self.loop.call_later(
                self.limits.body_read_timeout, self._body_timeout, stream
            )

    async def _run(self, stream: Stream) -> None:
        try:
            await self.app(stream.scope, stream.receive, stream.send)
        except asyncio.CancelledError:
            if stream.scope.get(SCOPE_KEY) is None:
                raise
        except Exception:
            log.exception("the ASGI app failed on an HTTP/2 stream")
        finally:
            stream.app_done()
            self.streams.pop(stream.stream_id, None)
            self.schedule_flush()
            if not self.streams:
                self._on_idle()

    def _open_streams(self) -> int:
        """Streams open as the client counts them (h2's count would include
        streams whose HEADERS arrived in the same read, in any order)."""
        return sum(1 for s in self.streams.values() if not (s.gone or s.response_ended))

    def _body_timeout(self, stream: Stream) -> None:
        stream.body_timer = None
        if stream.request_ended or stream.response_started or stream.gone:
            return
        stream.interrupt(BODY_TIMEOUT)

    def _on_peer_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        if event.error_code:
            self.transport.close()
            return
        # The client opens no more streams; the open ones finish.
        if not self.streams:
            self.transport.close()

    # -- outgoing --------------------------------------------------------------

    def default_headers(self) -> Fields:
        return [(name.lower(), value) for name, value in self.server_state.default_headers]

    def head_pending(self, stream: Stream) -> None:
        self._heads.append(stream)
        self.schedule_flush()

    def acknowledge(self, stream_id: int, size: int) -> None:
        if size and not self._closed:
            self.h2.acknowledge_received_data(size, stream_id)
            self.schedule_flush()

    def reset(self, stream_id: int, code: ErrorCodes) -> None:
        if self._closed:
            return
        try:
            self.h2.reset_stream(stream_id, code)
        except h2.exceptions.StreamClosedError:
            return
        self.schedule_flush()

    def answer_error(self, stream_id: int, error: GatewayError, grpc: bool) -> None:
        """Answer a request the app never saw (or left unanswered): the JSON
        error body, or for a gRPC request a Trailers-Only gRPC status."""
        if self._closed:
            return
        try:
            if grpc:
                self.h2.send_headers(stream_id, grpc_error_fields(error), end_stream=True)
            else:
                fields, body = error_fields(error)
                self.h2.send_headers(stream_id, fields)
                self.h2.send_data(stream_id, body, end_stream=True)
            stream = self.h2.streams.get(stream_id)
            if stream is not None and stream.open:
                self.h2.reset_stream(stream_id, ErrorCodes.NO_ERROR)
        except h2.exceptions.ProtocolError:
            return
        self.schedule_flush()

    async def writable(self) -> None:
        """Wait while the socket's write buffer is above its high water mark."""
        while self._write_paused is not None:
            await asyncio.shield(self._write_paused)

    def schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._heads:
            heads, self._heads = self._heads, []
            for stream in heads:
                stream.emit_head(end_stream=False)
        data = self.h2.data_to_send()
        if data and not self._closed and not self.transport.is_closing():
            self.transport.write(data)

    def _go_away(self, code: ErrorCodes, debug: bytes) -> None:
        """GOAWAY naming the last stream taken, then close once no stream is
        open. h2's own GOAWAY would stop it from sending on those streams."""
        if self._goaway_sent:
            return
        self._goaway_sent = True
        self._cancel_idle_timer()
        self._flush()
        frame = GoAwayFrame(
            0, last_stream_id=self._last_stream_id, error_code=code, additional_data=debug
        )
        self.transport.write(frame.serialize())
        if not self.streams:
            self.transport.close()

    def _protocol_error(self, exc: Exception) -> None:
        log.debug("HTTP/2 protocol error from %s: %s", self.client, exc)
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection(ErrorCodes.PROTOCOL_ERROR)
        self._flush()
        self.transport.close()

    # -- idle ------------------------------------------------------------------

    def _on_idle(self) -> None:
        if self._goaway_sent:
            self._flush()
            self.transport.close()
        elif not self._closed:
            self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        self._cancel_idle_timer()
        self._idle_timer = self.loop.call_later(self.limits.idle_timeout, self._idle_timeout)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_timeout(self) -> None:
        self._idle_timer = None
        if not self.streams and not self._closed:
            self._go_away(ErrorCodes.NO_ERROR, b"idle")


def _streams_by_design(headers: Fields) -> bool:
    """gRPC and gRPC-Web requests: streams bounded by their own deadlines."""
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"application/grpc")
    return False
