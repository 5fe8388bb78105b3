"""One HTTP/2 stream as one ASGI request: ``receive`` and ``send``.

Flow control is what bounds memory here, in both directions:

* Request DATA is acknowledged to the peer (WINDOW_UPDATE) only when the
  app takes it through ``receive()``. A slow app therefore stops the client
  once the stream's window is full: the stream never buffers more than its
  window, the connection never more than the connection window.
* ``send()`` writes DATA only as far as the peer's stream and connection
  windows allow, and while the socket's write buffer is below its high
  water mark; otherwise it waits. A client that reads nothing holds the app
  in ``send()``, which holds the upstream call (and its own flow control).

The response head of a response without trailers waits for the rest of the
current event-loop step: if the app ends the response at once with an empty
body, the head goes out as one HEADERS frame with END_STREAM (the
"Trailers-Only" form gRPC errors use); otherwise it is flushed at the end of
the step, so a streaming response's head is not held back by its first
chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError

from gateway.errors import Code, GatewayError, RequestTimeout
from gateway.http2.messages import Fields, is_grpc, response_fields, trailer_fields
from gateway.interrupts import BODY_TIMEOUT, CLIENT_GONE, SCOPE_KEY, Reason

if TYPE_CHECKING:
    from gateway.http2.protocol import H2Protocol

DISCONNECT = {"type": "http.disconnect"}


class Stream:
    """Request state, response state, and the waits between the app and the peer."""

    def __init__(self, owner: H2Protocol, stream_id: int, scope: dict[str, Any]) -> None:
        self.owner = owner
        self.stream_id = stream_id
        self.scope = scope
        self.task: asyncio.Task[None] | None = None
        # Request body: (data, flow-controlled length) not yet given to the app.
        self._body: deque[tuple[bytes, int]] = deque()
        self.request_ended = False
        self._end_delivered = False
        # The peer reset the stream, or the connection is gone.
        self.gone = False
        self.response_started = False
        self.response_ended = False
        self._expect_trailers = False
        self._body_ended = False
        self._trailers: Fields = []
        # A head waiting for the end of the event-loop step (see module docs).
        self.pending_head: Fields | None = None
        self._reader: asyncio.Future[None] | None = None
        self._writer: asyncio.Future[None] | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self._head_only = scope["method"] == "HEAD"

    # -- events from the peer -------------------------------------------------

    def on_data(self, data: bytes, flow_controlled: int) -> None:
        if self.response_ended or self.gone:
            # Nobody will read it: give the window back at once.
            self.owner.acknowledge(self.stream_id, flow_controlled)
            return
        self._body.append((data, flow_controlled))
        _wake(self._reader)

    def on_end(self) -> None:
        self.request_ended = True
        self.cancel_body_timer()
        _wake(self._reader)

    def on_gone(self) -> None:
        """The peer reset the stream or the connection closed: wake the app,
        and if it is still answering, interrupt it (gateway.interrupts)."""
        if self.gone:
            return
        self.gone = True
        self.pending_head = None
        self.cancel_body_timer()
        self._release_body()
        _wake(self._reader)
        _wake(self._writer)
        if not self.response_ended:
            self.interrupt(CLIENT_GONE)

    def on_window(self) -> None:
        _wake(self._writer)

    def interrupt(self, reason: Reason) -> bool:
        task = self.task
        if task is None or task.done():
            return False
        self.scope[SCOPE_KEY] = reason
        task.cancel()
        return True

    # -- ASGI ------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        while True:
            if self._body:
                return self._take_body()
            if self.request_ended and not self._end_delivered:
                self._end_delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.gone or (self._end_delivered and self.response_ended):
                return DISCONNECT
            if self.response_ended and not self.request_ended:
                # Answered before the body came: the rest was refused (RST NO_ERROR).
                return DISCONNECT
            self._reader = self.owner.loop.create_future()
            try:
                await self._reader
            finally:
                self._reader = None

    def _take_body(self) -> dict[str, Any]:
        body = self._body
        if len(body) == 1:
            data, size = body.popleft()
        else:
            data = b"".join(chunk for chunk, _ in body)
            size = sum(n for _, n in body)
            body.clear()
        self.owner.acknowledge(self.stream_id, size)
        more = not self.request_ended
        if not more:
            self._end_delivered = True
        return {"type": "http.request", "body": data, "more_body": more}

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._start(message)
        elif kind == "http.response.body":
            await self._send_body(message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.trailers":
            self._send_trailers(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP/2 stream")

    def _start(self, message: Any) -> None:
        if self.response_started:
            raise RuntimeError("http.response.start sent twice")
        self.response_started = True
        self.cancel_body_timer()
        self._expect_trailers = bool(message.get("trailers", False))
        if self.gone:
            return
        self.pending_head = response_fields(
            message["status"], message.get("headers", ()), self.owner.default_headers()
        )
        self.owner.head_pending(self)

    async def _send_body(self, body: bytes, more: bool) -> None:
        if not self.response_started:
            raise RuntimeError("http.response.body before http.response.start")
        if self._body_ended:
            raise RuntimeError("http.response.body after the body ended")
        self._body_ended = not more
        if self.gone:
            return
        if self._head_only:
            body = b""  # a HEAD response has a content-length and no content
        end = not more and not self._expect_trailers
        if self.pending_head is not None:
            # An empty final body: the head alone ends the stream (Trailers-Only).
            self.emit_head(end_stream=end and not body)
            if end and not body:
                self._finish()
                return
        if body or end:
            await self._send_data(body, end)
        if end:
            self._finish()

    def _send_trailers(self, message: Any) -> None:
        if not self._expect_trailers:
            raise RuntimeError("http.response.trailers without trailers in http.response.start")
        if self.response_ended:
            raise RuntimeError("http.response.trailers after the response ended")
        self._trailers.extend(trailer_fields(message.get("headers", ())))
        if message.get("more_trailers", False) or self.gone:
            return
        if self.pending_head is not None:
            self.emit_head(end_stream=False)
        self._body_ended = True
        self.owner.h2.send_headers(self.stream_id, self._trailers, end_stream=True)
        self.owner.schedule_flush()
        self._finish()

    # -- writing ------------------------------------------------------------------

    def emit_head(self, end_stream: bool) -> None:
        head, self.pending_head = self.pending_head, None
        if head is None or self.gone:
            return
        self.owner.h2.send_headers(self.stream_id, head, end_stream=end_stream)
        self.owner.schedule_flush()

    async def _send_data(self, body: bytes, end: bool) -> None:
        owner = self.owner
        h2 = owner.h2
        offset = 0
        total = len(body)
        while True:
            await owner.writable()
            if self.gone:
                return
            window = min(h2.local_flow_control_window(self.stream_id), h2.max_outbound_frame_size)
            left = total - offset
            if left == 0:
                h2.send_data(self.stream_id, b"", end_stream=True)
                owner.schedule_flush()
                return
            if window <= 0:
                self._writer = owner.loop.create_future()
                try:
                    await self._writer
                finally:
                    self._writer = None
                continue
            size = min(window, left)
            chunk = body if size == total else body[offset : offset + size]
            offset += size
            last = offset == total
            h2.send_data(self.stream_id, chunk, end_stream=end and last)
            owner.schedule_flush()
            if last:
                return

    def _finish(self) -> None:
        self.response_ended = True
        self.cancel_body_timer()
        if not self.request_ended and not self.gone:
            # The answer is complete; the rest of the request is not wanted
            # (RFC 9113 8.1: RST_STREAM with NO_ERROR after a complete response).
            self.owner.reset(self.stream_id, ErrorCodes.NO_ERROR)
        self._release_body()
        _wake(self._reader)

    def app_done(self) -> None:
        """The app returned (or failed): end whatever it left open."""
        self.cancel_body_timer()
        if not self.response_ended and not self.gone:
            if not self.response_started:
                grpc = is_grpc(self.scope["headers"])
                self.owner.answer_error(self.stream_id, self._unanswered(), grpc)
            else:
                self.pending_head = None
                self.owner.reset(self.stream_id, ErrorCodes.INTERNAL_ERROR)
            self.response_ended = True
        self._release_body()

    def _unanswered(self) -> GatewayError:
        if self.scope.get(SCOPE_KEY) == BODY_TIMEOUT:
            # Interrupted for a late body, and the app left the answer to us.
            return RequestTimeout("request body not received in time")
        return GatewayError("internal server error", grpc_code=Code.INTERNAL)

    def _release_body(self) -> None:
        """Give back the window of request data nobody will read."""
        if self._body:
            size = sum(n for _, n in self._body)
            self._body.clear()
            with contextlib.suppress(ProtocolError):
                self.owner.acknowledge(self.stream_id, size)

    def cancel_body_timer(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
