"""The request and response every filter and the router see.

A filter is a function from the next handler to a new handler (starlette's
middleware shape, without ASGI's message plumbing): request order is the
order in the YAML, response order the reverse, as in Envoy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.exchange import Exchange

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

# The ID of the request being served, which error bodies name ("" outside a
# request, or with request IDs off); the gateway sets it for the request's task.
current_request_id: ContextVar[str] = ContextVar("meshgate_request_id", default="")


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


class ClientDisconnected(Exception):
    pass


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    query_string: bytes
    # Lower-cased names, in arrival order; repeated names keep every value.
    header_list: list[tuple[str, str]]
    client: tuple[str, int] | None = None
    receive: Receive | None = None
    # The path as sent, percent-escapes kept (REST templates match on it).
    raw_path: bytes = b""
    attributes: dict[str, Any] = field(default_factory=dict)
    # What the request did (route, cluster, attempts), for the observers; set
    # by the app, None when a filter or test builds a request of its own.
    exchange: Exchange | None = None
    _headers: dict[str, str] | None = None
    _body: bytes | None = None

    @property
    def headers(self) -> Mapping[str, str]:
        """Headers by name; repeated headers joined with ',' (RFC 9110 5.3)."""
        if self._headers is None:
            joined: dict[str, str] = {}
            for name, value in self.header_list:
                joined[name] = f"{joined[name]},{value}" if name in joined else value
            self._headers = joined
        return self._headers

    @property
    def body_size(self) -> int:
        """Bytes of the body read so far as a whole (0 when none was read)."""
        return len(self._body) if self._body is not None else 0

    @property
    def target_path(self) -> str:
        """The path as the client sent it, or the decoded one when that is unknown."""
        return self.raw_path.decode("latin-1") if self.raw_path else self.path

    async def read_body(self, limit: int) -> bytes:
        """The whole body, refusing more than ``limit`` bytes as soon as it is seen."""
        if self._body is not None:
            if len(self._body) > limit:
                raise BodyTooLarge(limit)
            return self._body
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(limit)
        chunks: list[bytes] = []
        size = 0
        more = self.receive is not None
        while more:
            assert self.receive is not None
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
            more = message.get("more_body", False)
        self._body = b"".join(chunks)
        return self._body


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    # When set, the body is streamed from this iterator instead of ``body``.
    stream: AsyncIterator[bytes] | None = None
    # When set (gRPC), called once the stream has ended: the fields sent as
    # HTTP/2 trailers (the server must offer ASGI's http.response.trailers).
    trailers: Callable[[], Awaitable[list[tuple[str, str]]]] | None = None


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
Filter = Callable[[Handler], Handler]
