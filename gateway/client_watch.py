"""The request's side of the connection while a handler runs.

Two things only the ASGI ``receive`` channel tells: whether the body is
arriving in time, and whether the client is still there. The body is read
through :class:`RequestReceiver`, each read bounded by the listener's
``body_read_timeout`` (a 408 past it); once the body is in, the receiver
watches the same channel for ``http.disconnect`` and cancels the task serving
the request, so the backend call is cancelled and its in-flight slot
released at once instead of when the backend finally answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway.errors import RequestTimeout

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class RequestReceiver:
    """``receive`` for the request body, and the watch for the client leaving."""

    __slots__ = ("_body_done", "_deadline", "_receive", "_timeout", "disconnected")

    def __init__(self, receive: Receive, body_timeout: float, has_body: bool) -> None:
        self._receive = receive
        self._timeout = body_timeout
        self._deadline = asyncio.get_running_loop().time() + body_timeout
        self._body_done = asyncio.Event()
        if not has_body:
            self._body_done.set()
        self.disconnected = False

    async def __call__(self) -> Message:
        """The next body chunk, or ``http.disconnect``; RequestTimeout if the
        whole body has not arrived within the timeout."""
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise RequestTimeout(
                f"request body not received within {self._timeout:g}s",
                # The rest of the body may still be on its way: not reusable.
                headers=[("connection", "close")],
            ) from None
        if message["type"] == "http.disconnect":
            self.disconnected = True
            self._body_done.set()
        elif not message.get("more_body", False):
            self._body_done.set()
        return message

    async def cancel_on_disconnect(self, task: asyncio.Task[Any]) -> None:
        """Cancel ``task`` when the client disconnects (runs until cancelled).

        Reads the channel only after the body is in, so it never takes a body
        chunk from the handler."""
        await self._body_done.wait()
        while not self.disconnected:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
        task.cancel()


def declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request carries a body (RFC 9112 6.3: length or chunked)."""
    for name, value in headers:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False
