"""Taking a reply stream's messages in batches of what is ready now.

A response stream is written one chunk per message unless several messages
are ready together; then they go out as one chunk (one ASGI message, one
chunk header, one write). :meth:`ReadAhead.take` waits for one message only
when none is ready, so the first message is never held for a later one.

Whether a message is ready is found without a second task (which would cost
a wake-up per message, measured: more than the batching saves with grpc.aio,
which delivers one message per wake-up): after each message the next read is
started on the spot. If it completes at once (an upstream that parsed
several messages from one read of its socket) its message joins the batch;
if it has to wait, it is left started, and the next ``take`` carries on
waiting for it. So the next read is already on its way while the batch is
written.

Starting a read early has a price, though (measured: about a tenth of the
gateway's CPU per message), and grpc.aio never has a second message ready:
it delivers one per wake-up of the loop. So a stream whose next message was
not ready ``MAX_MISSES`` times in a row is read plainly from then on.

Backpressure is kept: beyond the batch (at most ``max_bytes`` of raw
messages) only that one started read is ahead of the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Generator
from typing import Any

# Raw message bytes taken into one batch at most.
DEFAULT_MAX_BYTES = 64 * 1024
# Reads started early in vain, in a row, before a stream is read plainly.
MAX_MISSES = 8


class ReadAhead:
    __slots__ = ("_done", "_error", "_max_bytes", "_messages", "_misses", "_pending")

    def __init__(self, messages: AsyncIterator[bytes], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._messages = messages
        self._max_bytes = max_bytes
        # A read started and suspended: the awaitable and what it waits on.
        self._pending: tuple[Any, Any] | None = None
        self._error: Exception | None = None  # raised by the next take
        self._done = False
        self._misses = 0

    async def take(self) -> list[bytes]:
        """The next message, waiting for it if need be, and every message after
        it that is ready at once; ``[]`` once the stream has ended. The
        stream's error is raised after the messages before it."""
        if self._error is not None:
            error, self._error = self._error, None
            self._done = True
            raise error
        if self._done:
            return []
        pending, self._pending = self._pending, None
        try:
            if pending is None:
                first = await anext(self._messages)
            else:
                first = await _Continue(*pending)
        except StopAsyncIteration:
            self._done = True
            return []
        batch = [first]
        if self._misses >= MAX_MISSES:
            return batch
        size = len(first)
        while size < self._max_bytes:
            started = self._messages.__anext__().__await__()
            try:
                waits_on = started.send(None)
            except StopIteration as ready:
                self._misses = 0
                batch.append(ready.value)
                size += len(ready.value)
                continue
            except StopAsyncIteration:
                self._done = True
                break
            except Exception as exc:
                self._error = exc
                break
            self._pending = (started, waits_on)
            self._misses += 1
            break
        return batch

    async def aclose(self) -> None:
        """End the upstream call (the client left, or the stream was cut):
        a read left started is cancelled, so the stream's own clean-up runs."""
        pending, self._pending = self._pending, None
        self._done = True
        if pending is not None:
            started, _ = pending
            try:
                waits_on = started.throw(asyncio.CancelledError())
            except BaseException:
                pass  # unwound, as expected
            else:
                # The stream awaits something in its clean-up: let it finish.
                with contextlib.suppress(BaseException):
                    await _Continue(started, waits_on)
        aclose = getattr(self._messages, "aclose", None)
        if aclose is not None:
            await aclose()


class _Continue(Awaitable[Any]):
    """Awaits an awaitable that was already stepped once and is suspended on
    ``waits_on``: what ``yield from`` does, from its second step on."""

    __slots__ = ("_started", "_waits_on")

    def __init__(self, started: Any, waits_on: Any) -> None:
        self._started = started
        self._waits_on = waits_on

    def __await__(self) -> Generator[Any, Any, Any]:
        started, waits_on = self._started, self._waits_on
        while True:
            try:
                sent = yield waits_on
            except GeneratorExit:
                started.close()
                raise
            except BaseException as exc:
                try:
                    waits_on = started.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waits_on = started.send(sent)
                except StopIteration as done:
                    return done.value
