"""One dubbo2 TCP connection: requests multiplexed by id, a reader task, heartbeats.

The wire format lives in ``gateway.dubbo.protocol`` (sans-IO); this module only
moves its bytes. Like Dubbo's own ``HeaderExchangeClient``:

* every request gets a fresh id and a future; the reader task feeds a
  ``FrameDecoder`` and completes the future of each response by id, so any
  number of calls share the socket;
* a heartbeat request from the server is answered at once;
* after ``heartbeat`` seconds without reading or writing, a heartbeat is sent
  (Dubbo's ``HeartbeatTimerTask``); after ``heartbeat * missed_limit`` seconds
  without reading anything, the peer is presumed dead and the connection
  closes (``CloseTimerTask``), failing every pending call;
* a read-only event (``"R"``, sent by a provider that is shutting down) marks
  the connection unusable for new calls; calls in flight still complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Final

from gateway.dubbo.errors import DubboCodecError
from gateway.dubbo.invocation import Invocation
from gateway.dubbo.protocol import (
    Event,
    FrameDecoder,
    Heartbeat,
    Request,
    Response,
    encode_heartbeat,
    encode_request,
)

log = logging.getLogger(f"meshgate.{__name__}")

DEFAULT_HEARTBEAT: Final = 30.0
DEFAULT_MISSED_LIMIT: Final = 3
_READ_CHUNK = 64 * 1024
_READONLY_EVENT = "R"


class ConnectionLost(ConnectionError):
    """The connection closed (or was closed) before the call was answered."""


class DubboConnection:
    def __init__(
        self,
        address: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        heartbeat: float = DEFAULT_HEARTBEAT,
        missed_limit: int = DEFAULT_MISSED_LIMIT,
    ) -> None:
        self.address = address
        self._reader = reader
        self._writer = writer
        self._heartbeat = heartbeat
        self._missed_limit = missed_limit
        self._decoder = FrameDecoder()
        self._pending: dict[int, asyncio.Future[Response]] = {}
        # Ids are per connection: responses can only come back on the socket that
        # carried the request, so uniqueness per socket is all that matters.
        self._ids = itertools.count(1)
        loop = asyncio.get_running_loop()
        self._last_read = self._last_write = loop.time()
        self._closed: BaseException | None = None
        self.readonly = False
        self.heartbeats_sent = 0
        self.heartbeats_answered = 0
        self._reader_task = loop.create_task(self._read_loop(), name=f"dubbo-read {address}")
        self._heartbeat_task = loop.create_task(
            self._heartbeat_loop(), name=f"dubbo-heartbeat {address}"
        )

    @classmethod
    async def open(
        cls,
        address: str,
        *,
        connect_timeout: float,
        heartbeat: float = DEFAULT_HEARTBEAT,
        missed_limit: int = DEFAULT_MISSED_LIMIT,
        socket_path: str | None = None,
    ) -> DubboConnection:
        """Connect to ``address``, or through ``socket_path`` (the TLS transport) to it."""
        host, _, port = address.rpartition(":")
        async with asyncio.timeout(connect_timeout):
            if socket_path is not None:
                reader, writer = await asyncio.open_unix_connection(socket_path, limit=_READ_CHUNK)
            else:
                reader, writer = await asyncio.open_connection(
                    host.strip("[]"), int(port), limit=_READ_CHUNK
                )
        return cls(address, reader, writer, heartbeat=heartbeat, missed_limit=missed_limit)

    @property
    def usable(self) -> bool:
        return self._closed is None and not self.readonly

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def request(self, invocation: Invocation) -> Response:
        """Send one two-way request and wait for its response (no deadline here)."""
        if self._closed is not None:
            raise ConnectionLost(f"connection to {self.address} is closed: {self._closed}")
        request_id = next(self._ids)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        frame = encode_request(Request(request_id, invocation))  # may raise DubboCodecError
        self._pending[request_id] = future
        try:
            await self._send(frame)
            return await future
        finally:
            # A late answer to an abandoned (timed-out, cancelled) call is dropped by id.
            self._pending.pop(request_id, None)

    async def _send(self, data: bytes) -> None:
        self._writer.write(data)
        self._last_write = asyncio.get_running_loop().time()
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._fail(exc)
            raise ConnectionLost(f"connection to {self.address} failed: {exc}") from None

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    self._fail(ConnectionLost(f"{self.address} closed the connection"))
                    return
                self._last_read = loop.time()
                for frame in self._decoder.feed(data):
                    self._dispatch(frame)
        except DubboCodecError as exc:
            # A broken frame header: the byte stream cannot be resynchronised.
            log.warning("dubbo %s: %s; closing the connection", self.address, exc)
            self._fail(exc)
        except (ConnectionError, OSError) as exc:
            self._fail(exc)

    def _dispatch(self, frame: object) -> None:
        if isinstance(frame, Response):
            future = self._pending.get(frame.request_id)
            if future is not None and not future.done():
                future.set_result(frame)
        elif isinstance(frame, Heartbeat):
            if frame.is_request:
                if frame.two_way:
                    self._write_nowait(encode_heartbeat(frame.request_id, is_request=False))
            else:
                self.heartbeats_answered += 1
        elif isinstance(frame, Event):
            if frame.data == _READONLY_EVENT:
                self.readonly = True
            if frame.is_request and frame.two_way:
                self._write_nowait(encode_heartbeat(frame.request_id, is_request=False))
        elif isinstance(frame, Request):
            # Server-to-client calls (Dubbo callbacks) are not supported: leave them
            # unanswered rather than guess at a reply.
            log.debug(
                "dubbo %s: ignoring request %d from the server", self.address, frame.request_id
            )

    def _write_nowait(self, data: bytes) -> None:
        # Control frames are tiny; the transport buffers them without a drain.
        if self._closed is None and not self._writer.is_closing():
            self._writer.write(data)
            self._last_write = asyncio.get_running_loop().time()

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick = max(self._heartbeat / 3, 0.01)
        while self._closed is None:
            await asyncio.sleep(tick)
            now = loop.time()
            if now - self._last_read > self._heartbeat * self._missed_limit:
                self._fail(
                    ConnectionLost(
                        f"{self.address} sent nothing for {now - self._last_read:.1f}s "
                        f"({self._missed_limit} heartbeats missed)"
                    )
                )
                return
            if now - self._last_read > self._heartbeat or now - self._last_write > self._heartbeat:
                self.heartbeats_sent += 1
                self._write_nowait(encode_heartbeat(next(self._ids)))

    def _fail(self, exc: BaseException) -> None:
        """Close the socket and fail every pending call; idempotent."""
        if self._closed is not None:
            return
        self._closed = exc
        error = (
            exc
            if isinstance(exc, ConnectionLost)
            else ConnectionLost(f"connection to {self.address} lost: {exc or type(exc).__name__}")
        )
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        self._writer.close()
        current = asyncio.current_task()
        for task in (self._reader_task, self._heartbeat_task):
            if task is not current:
                task.cancel()

    async def close(self) -> None:
        self._fail(ConnectionLost(f"connection to {self.address} closed by the gateway"))
        for task in (self._reader_task, self._heartbeat_task):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
