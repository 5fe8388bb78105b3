"""Triple's unary HTTP/JSON mode: ``POST http://{address}/{interface}/{method}`` over HTTP/1.1.

Java Dubbo (3.3) and dubbo-go (3.3) both serve unary Triple methods to plain
HTTP/1.1 clients with ``content-type: application/json``. The body goes through
as the client sent it: Java accepts an array of arguments, a single value or an
object keyed by parameter name; dubbo-go wants the protobuf JSON of the request.

Headers (names are case-insensitive on both servers):

* ``tri-service-group`` / ``tri-service-version`` select the provider,
  ``tri-consumer-appname`` names the caller, ``tri-service-timeout`` (ms) is
  Java's deadline header;
* ``Triple-Timeout-Ms`` is dubbo-go's deadline header and
  ``Triple-Protocol-Version: 0.1.0`` its protocol marker (dubbo-go's
  ``triple_protocol/protocol_triple.go``: a present but different value is
  rejected with ``invalid_argument``, so exactly ``0.1.0`` is sent);
* the call's attachments go as lower-cased headers; the gateway's own headers win.

Overloaded Java methods are told apart by a ``~signature`` path suffix; see
:func:`method_signature`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson

from gateway.config import split_address
from gateway.dubbo.jvm_types import PRIMITIVE_CODES
from gateway.errors import (
    CONNECT_FAILURE,
    GRPC_CODES_BY_NAME,
    RESET,
    BadRequest,
    Code,
    GatewayError,
    UpstreamStatus,
    UpstreamUnavailable,
)
from gateway.tls.transport import TlsTransports
from gateway.upstream.call import Call, ReplyStream
from gateway.upstream.generic import GenericCall, GenericReply, no_streaming
from gateway.upstream.http1 import InvalidHeader, ProtocolError, encode_request
from gateway.upstream.http1_pool import (
    DEFAULT_MAX_CONNECTIONS,
    ConnectFailed,
    Connector,
    Http1Connection,
    Http1Pool,
)
from gateway.upstream.triple import normalize_triple_error
from mesh.security import UpstreamTls

TRIPLE_PROTOCOL_VERSION = "0.1.0"
ALPN = ("http/1.1",)
_MAX_ERROR_TEXT = 512
# Attachment names that would corrupt the HTTP exchange or override the
# gateway's own choice of provider and deadline.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "accept-encoding",
        "tri-service-group",
        "tri-service-version",
        "tri-consumer-appname",
        "tri-service-timeout",
        "triple-timeout-ms",
        "triple-protocol-version",
    }
)
# Java answers errors as {"message", "status"} with the HTTP status only; the
# statuses its REST layer uses, read as gRPC codes. 404 is NOT_FOUND (not
# Connect's UNIMPLEMENTED): Java says "Invoker not found" for an unknown method
# or provider, which the gateway reports as "no such method" everywhere else.
_HTTP_TO_GRPC: dict[int, int] = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    405: 12,
    408: 4,
    409: 10,
    412: 9,
    413: 8,
    415: 3,
    429: 8,
    499: 1,
    500: 2,
    501: 12,
    502: 14,
    503: 14,
    504: 4,
}
# Connect's spelling of CANCELLED, as dubbo-go's code.go writes it.
_CODE_ALIASES = {"canceled": 1}


def method_signature(parameter_types: Sequence[str]) -> str | None:
    """The suffix Java Dubbo's REST mapping expects after ``method~`` for overloads.

    Dubbo 3.3 ``TypeUtils.buildSig(Method)``: for each parameter, take
    ``Class.getName()`` and append the character right after its last ``.``
    (so ``java.lang.String`` -> ``S``, ``int`` -> ``i``, ``long`` -> ``l``,
    ``java.util.List`` -> ``L``); no parameters -> no signature. The request path
    ``/{interface}/{method}~{sig}`` first fails to match as a whole, then is
    matched without the suffix with ``sig`` compared to each candidate's.
    """
    if not parameter_types:
        return None
    return "".join(_sig_char(_class_get_name(t)) for t in parameter_types)


def _class_get_name(type_name: str) -> str:
    """``Class.getName()`` of a type written as in Java source (``String[]``) or JVM form."""
    name = type_name.strip()
    dims = 0
    while name.endswith("[]"):
        name, dims = name[:-2].rstrip(), dims + 1
    if dims == 0:
        return name
    element = PRIMITIVE_CODES.get(name) if name != "void" else None
    return "[" * dims + (element if element is not None else f"L{name};")


def _sig_char(class_name: str) -> str:
    return class_name[class_name.rfind(".") + 1]


def request_path(call: GenericCall) -> str:
    signature = method_signature(call.parameter_types or ())
    method = f"{call.method}~{signature}" if signature else call.method
    return f"/{call.interface}/{method}"


def request_headers(call: GenericCall) -> dict[str, str]:
    headers = {
        name.lower(): value
        for name, value in call.attachments.items()
        if name.lower() not in _RESERVED_HEADERS
    }
    headers["content-type"] = "application/json"
    headers["tri-consumer-appname"] = call.application
    headers["triple-protocol-version"] = TRIPLE_PROTOCOL_VERSION
    if call.group:
        headers["tri-service-group"] = call.group
    if call.version:
        headers["tri-service-version"] = call.version
    if call.timeout is not None:
        millis = str(max(1, int(call.timeout * 1000)))
        headers["tri-service-timeout"] = millis
        headers["triple-timeout-ms"] = millis
    return headers


def error_from_response(status: int, body: bytes, target: str) -> GatewayError:
    """A non-2xx answer as the gateway's error: dubbo-go's Connect body or Java's."""
    parsed: Any = None
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    message: str | None = None
    if isinstance(parsed, Mapping):
        raw_message = parsed.get("message")
        message = raw_message if isinstance(raw_message, str) else None
        code_name = parsed.get("code")
        if isinstance(code_name, str):
            code = GRPC_CODES_BY_NAME.get(code_name, _CODE_ALIASES.get(code_name))
            if code == Code.UNIMPLEMENTED:
                # dubbo-go's word for "no provider of that interface, group and
                # version": for a Dubbo route that is an unknown service, 404 as
                # in every other Dubbo mode.
                code = Code.NOT_FOUND
            if code is not None:
                # dubbo-go: the code is authoritative; HTTP follows gRPC's table.
                return _status_error(code, message or code_name, target)
    if message is None:
        text = body.decode("utf-8", "replace").strip()
        message = text[:_MAX_ERROR_TEXT] or f"HTTP {status}"
    return _status_error(_HTTP_TO_GRPC.get(status, 2), message, target)


def _status_error(code: int, message: str, target: str) -> GatewayError:
    if code == Code.UNAVAILABLE:
        return UpstreamUnavailable(f"{target}: {message}")
    # dubbo-go answers its own timer's expiry as an unknown code ("code_17", HTTP
    # 500) with "context deadline exceeded": the same timeout as gRPC mode's.
    return normalize_triple_error(UpstreamStatus(message, grpc_code=code))


class TripleJsonUpstream:
    """Pooled HTTP/1.1 keep-alive connections per Triple endpoint (and TLS settings), per worker."""

    def __init__(
        self,
        *,
        max_connections_per_host: int = DEFAULT_MAX_CONNECTIONS,
        tls: TlsTransports | None = None,
    ) -> None:
        self._max_connections = max_connections_per_host
        self._owns_tls = tls is None
        self._tls = tls or TlsTransports()
        self._pools: dict[tuple[str, UpstreamTls | None], Http1Pool] = {}

    async def _pool_for(self, address: str, security: UpstreamTls | None) -> Http1Pool:
        pool = self._pools.get((address, security))
        if pool is None:
            connect = (
                _unix_connector(await self._tls.socket_path(address, security, ALPN))
                if security is not None
                else _tcp_connector(address)
            )
            pool = self._pools.setdefault(
                (address, security), Http1Pool(connect, max_connections=self._max_connections)
            )
        return pool

    async def unary(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> GenericReply:
        return await self.call(address, GenericCall.from_call(call, timeout), security)

    async def stream(
        self, address: str, call: Call, timeout: float | None, security: UpstreamTls | None = None
    ) -> ReplyStream:
        raise no_streaming(call)

    async def call(
        self, address: str, call: GenericCall, security: UpstreamTls | None = None
    ) -> GenericReply:
        path = request_path(call)
        target = f"triple {address}{path}"
        try:
            # httpx sent ``accept: */*``; Java's REST content negotiation is used to it.
            headers = {"accept": "*/*", **request_headers(call)}
            request = encode_request("POST", path, address, headers.items(), call.body)
        except InvalidHeader as exc:
            raise BadRequest(str(exc)) from None
        try:
            async with asyncio.timeout(call.timeout):
                pool = await self._pool_for(address, security)
                response = await pool.request(request)
        except TimeoutError:
            raise UpstreamStatus(
                f"{target}: no answer within {call.timeout:g}s", grpc_code=4
            ) from None
        except (ConnectionError, ProtocolError) as exc:
            cause = CONNECT_FAILURE if isinstance(exc, ConnectFailed) else RESET
            failure = self._tls.failure(address, security, ALPN) if security else None
            raise UpstreamUnavailable(
                f"{target}: {failure or exc or type(exc).__name__}", cause=cause
            ) from None
        if 200 <= response.status < 300:
            return GenericReply(response.body or b"null")
        raise error_from_response(response.status, response.body, target)

    async def retain(self, addresses: Collection[str]) -> None:
        """Close the connections to endpoints that left every cluster."""
        for key in [key for key in self._pools if key[0] not in addresses]:
            self._pools.pop(key).close()

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()
        if self._owns_tls:
            await self._tls.close()


def _tcp_connector(address: str) -> Connector:
    host, port = split_address(address)

    async def connect() -> Http1Connection:
        _, connection = await asyncio.get_running_loop().create_connection(
            Http1Connection, host, port
        )
        return connection

    return connect


def _unix_connector(path: str) -> Connector:
    async def connect() -> Http1Connection:
        _, connection = await asyncio.get_running_loop().create_unix_connection(
            Http1Connection, path
        )
        return connection

    return connect
