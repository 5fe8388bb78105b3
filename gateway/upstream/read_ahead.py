"""Reading a reply stream ahead of its consumer, into a bounded buffer.

A response stream is read by one task (the pump) and written by another (the
request's). While the writer is busy (a client slow to read, a loop with
other work to do) the pump keeps reading, so the writer then finds several
messages waiting and can send them as one chunk: one ASGI message, one
chunk header, one write. The writer never waits for a message that is not
there yet: :meth:`ReadAhead.take` returns as soon as one is.

Backpressure is kept: once ``max_bytes`` are buffered the pump stops reading
until the writer takes them, and the upstream's own flow control holds the
backend from there. An error of the stream reaches the writer after the
messages read before it, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

# Raw message bytes buffered ahead of the writer before the pump waits.
DEFAULT_MAX_BYTES = 64 * 1024


class ReadAhead:
    __slots__ = ("_buffered", "_end", "_max_bytes", "_messages", "_pump", "_ready", "_room")

    def __init__(
        self, messages: AsyncIterator[bytes], max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self._messages = messages
        self._max_bytes = max_bytes
        self._buffered: list[bytes] = []
        self._end: BaseException | None = None  # StopAsyncIteration: ended cleanly
        self._ready: asyncio.Future[None] | None = None  # the writer waits for messages
        self._room: asyncio.Future[None] | None = None  # the pump waits for room
        self._pump: asyncio.Task[None] | None = None

    async def take(self) -> list[bytes]:
        """Every message read and not yet taken, waiting for the first if there
        is none; ``[]`` once the stream has ended; the stream's error, if it
        failed, once its earlier messages are taken."""
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._run())
        while not self._buffered:
            end = self._end
            if end is not None:
                if isinstance(end, StopAsyncIteration):
                    return []
                raise end
            self._ready = asyncio.get_running_loop().create_future()
            try:
                await self._ready
            finally:
                self._ready = None
        batch, self._buffered = self._buffered, []
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)
        return batch

    async def aclose(self) -> None:
        """Stop reading and end the upstream call (the client left, or the
        stream was cut); idempotent."""
        pump = self._pump
        if pump is not None and not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        # The pump may never have run, or stopped while waiting for room.
        aclose = getattr(self._messages, "aclose", None)
        if aclose is not None:
            await aclose()

    async def _run(self) -> None:
        buffered = 0
        try:
            async for message in self._messages:
                if not self._buffered:
                    buffered = 0
                self._buffered.append(message)
                buffered += len(message)
                self._wake()
                if buffered >= self._max_bytes:
                    self._room = asyncio.get_running_loop().create_future()
                    try:
                        await self._room
                    finally:
                        self._room = None
            self._end = StopAsyncIteration()
        except Exception as exc:
            self._end = exc
        finally:
            if self._end is None:
                # Cancelled (aclose): nobody takes any more.
                self._end = StopAsyncIteration()
            self._wake()

    def _wake(self) -> None:
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_result(None)
