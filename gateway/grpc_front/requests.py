"""A passthrough call's request messages, read from the client as the
upstream takes them.

The gRPC upstream asks for the next message only when it has written the
previous one, so a slow backend stops the reads and the HTTP/2 server's flow
control holds the client back: nothing is buffered without bound. Messages
are kept for a retry until the first reply message commits the call (or
until they outgrow ``replay_limit``).

Cancellation-safe: a read cancelled while waiting on ``receive()`` loses
nothing, so the next attempt continues from the same place.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence

from filters.http import Receive
from gateway.errors import BadRequest, ClientClosedRequest, GatewayError, PayloadTooLarge
from gateway.grpc_front.frames import COMPRESSED, Frame, FrameDecoder, FrameError, decompress
from gateway.grpc_front.grpc_web import TextDecoder

Transform = Callable[[bytes], bytes]


class RequestFailed(Exception):
    """Raised into the upstream call to cancel it; ``RequestPump.failure`` says why."""


class RequestPump:
    def __init__(
        self,
        receive: Receive | None,
        limit: int,
        *,
        text: bool = False,
        compression: str | None = None,
        transform: Transform | None = None,
        messages: Sequence[bytes] | None = None,
    ) -> None:
        self._receive = receive
        self._limit = limit
        self._frames = FrameDecoder(limit)
        self._text = TextDecoder() if text else None
        self._compression = compression
        self._transform = transform
        # Messages given whole (Connect unary, GET) need no reads.
        self._ready: deque[bytes] = deque(messages or ())
        self._ended = messages is not None or receive is None
        self._kept: list[bytes] | None = []
        self._kept_bytes = 0
        self.failure: GatewayError | None = None

    @property
    def replayable(self) -> bool:
        return self._kept is not None

    def commit(self) -> None:
        self._kept = None

    async def attempt(self) -> AsyncGenerator[bytes, None]:
        for message in tuple(self._kept or ()):
            yield message
        while True:
            got = await self._next()
            if got is None:
                return
            message = got
            if self._kept is not None:
                self._kept.append(message)
                self._kept_bytes += len(message)
                if self._kept_bytes > self._limit:
                    self._kept = None  # too much to keep: this attempt is the only one
            yield message

    async def _next(self) -> bytes | None:
        while not self._ready:
            if self._ended:
                return None
            assert self._receive is not None
            event = await self._receive()
            if event["type"] == "http.disconnect":
                self._fail(ClientClosedRequest("the client went away"))
            try:
                self._take(event.get("body", b""), more=event.get("more_body", False))
            except FrameError as exc:
                error = PayloadTooLarge if exc.too_large else BadRequest
                self._fail(error(f"request: {exc}"))
            except GatewayError as exc:
                self._fail(exc)
        return self._ready.popleft()

    def _take(self, body: bytes, *, more: bool) -> None:
        if self._text is not None:
            body = self._text.feed(body)
        for frame in self._frames.feed(body):
            self._ready.append(self._payload(frame))
        if not more:
            self._ended = True
            if self._frames.pending or (self._text is not None and self._text.pending):
                raise FrameError("the request ended inside a message")

    def _payload(self, frame: Frame) -> bytes:
        if frame.flags & ~COMPRESSED:
            raise FrameError(f"unexpected message flags 0x{frame.flags:02x}")
        payload = frame.payload
        if frame.flags & COMPRESSED:
            payload = decompress(payload, self._compression, self._limit)
        return self._transform(payload) if self._transform is not None else payload

    def _fail(self, error: GatewayError) -> None:
        self.failure = error
        raise RequestFailed(error.message)
