"""What the router asks of a route kind: decode a request into a call, then
encode the reply.

Kinds today: protobuf transcoding (``protobuf_kind``) and JSON to Dubbo
(``dubbo_kind``). A new kind (gRPC passthrough) implements these two
protocols and the router does not change.
"""

from __future__ import annotations

from typing import Literal, Protocol

from filters.http import HttpRequest, HttpResponse
from gateway.upstream.call import Call, Reply, ReplyStream

# What a kind's calls carry: serialized protobuf messages, or one JSON body.
Encoding = Literal["proto", "json"]


class Decoded(Protocol):
    """One request decoded: the call to make, and how to answer with its reply."""

    @property
    def call(self) -> Call: ...

    def encode(self, reply: Reply) -> HttpResponse: ...

    async def encode_stream(self, stream: ReplyStream) -> HttpResponse: ...


class RouteKind(Protocol):
    encoding: Encoding

    async def decode(self, request: HttpRequest) -> Decoded:
        """Raises a GatewayError (404, 405, 400, 413) for a request it cannot serve."""
        ...
