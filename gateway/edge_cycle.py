"""uvicorn's request/response cycle, answering a response of known length in one write.

uvicorn writes the status line and headers when the app sends
``http.response.start`` and the body at ``http.response.body``: two write
syscalls, two TCP segments, for every small JSON answer. Here a head that
carries ``content-length`` is held back until the first body message and
leaves with it. Nothing waits on that: the app sends the body right after
the head (an app that never does has not completed its response either).
Chunked responses (streams) still get their head at once, so a client sees
the status before the first message.

The head is also built here, with one check of all header names and one of
all values instead of two regular-expression searches per header; what it
accepts and writes is what uvicorn's would.
"""

from __future__ import annotations

import re
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

# uvicorn's rules: no separators or controls in a name, no controls but tab
# in a value. Checked over the names (and the values) joined together, where
# a forbidden byte is found as surely as in each one alone.
_BAD_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_BAD_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
# A body up to this size is copied behind its head for the single write;
# a larger one goes in a second write rather than being copied.
_JOIN_LIMIT = 64 * 1024


class EdgeCycle(RequestResponseCycle):
    # The response head, while it waits for the first body message.
    _held: bytes | None = None

    async def send(self, message: Any) -> None:
        if self.response_started:
            if self._held is not None and not self.disconnected:
                await self._send_held(message)
            else:
                await super().send(message)
            return
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if message["type"] != "http.response.start":
            # uvicorn's error for an app that skips the head.
            await super().send(message)
            return
        head = self._head(message["status"], message.get("headers", ()))
        if self.chunked_encoding is False and self.scope["method"] != "HEAD":
            self._held = head
        else:
            self.transport.write(head)

    def _head(self, status: int, headers: Any) -> bytes:
        """The status line and headers; sets the framing and keep-alive as uvicorn does."""
        self.response_started = True
        self.waiting_for_100_continue = False
        pairs = [*self.default_headers, *headers]
        if _BAD_NAME.search(b"".join([name for name, _ in pairs])):
            raise RuntimeError("Invalid HTTP header name.")
        if _BAD_VALUE.search(b"".join([value for _, value in pairs])):
            raise RuntimeError("Invalid HTTP header value.")
        content = [STATUS_LINE[status]]
        closes = False
        for name, value in pairs:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection" and b"close" in [
                token.strip().lower() for token in value.split(b",")
            ]:
                self.keep_alive = False
                closes = True
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not closes:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status not in (204, 304)
        ):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)

    async def _send_held(self, message: Any) -> None:
        """The first body message of a response of known length, after its head."""
        if message["type"] != "http.response.body":
            await super().send(message)  # uvicorn's error for the wrong message
            return
        head, self._held = self._held, None
        assert head is not None
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if len(body) > self.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        self.expected_content_length -= len(body)
        if len(body) <= _JOIN_LIMIT:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        if more_body:
            return
        if self.expected_content_length != 0:
            raise RuntimeError("Response content shorter than Content-Length")
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()
