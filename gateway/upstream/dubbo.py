"""dubbo2 over TCP: JSON in, generic invocation (``$invoke``) out, JSON back.

A generic call needs no Java classes on the gateway: the method name, its
parameter types and the arguments travel as ``$invoke(String, String[],
Object[])`` with the attachment ``generic=true``, and the provider's generic
filter turns maps with a ``class`` key into POJOs. The result comes back as
hessian2 and leaves as JSON (``to_jsonable``: dates as ISO-8601 UTC, bytes as
base64, POJOs as objects).

One pooled connection per endpoint address and worker, opened on first use and
reopened after a failure; see ``dubbo_conn`` for multiplexing and heartbeats.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection, Sequence
from typing import Any

import orjson

from gateway.dubbo.errors import DubboCodecError
from gateway.dubbo.hessian2_json import exception_summary, from_jsonable, to_jsonable
from gateway.dubbo.hessian2_types import JavaLong, JavaObject
from gateway.dubbo.invocation import GENERIC_INVOKE, Invocation, generic_invocation
from gateway.dubbo.jvm_types import descriptor_of
from gateway.dubbo.protocol import Response, Status
from gateway.errors import (
    CONNECT_FAILURE,
    RESET,
    BadRequest,
    GatewayError,
    UpstreamStatus,
    UpstreamUnavailable,
)
from gateway.tls.transport import TlsTransports
from gateway.upstream.call import Call, ReplyStream
from gateway.upstream.dubbo_conn import (
    DEFAULT_HEARTBEAT,
    DEFAULT_MISSED_LIMIT,
    ConnectionLost,
    DubboConnection,
)
from gateway.upstream.generic import GenericCall, GenericReply, no_streaming
from mesh.security import UpstreamTls

ConnectionKey = tuple[str, UpstreamTls | None]

TYPES_HINT = (
    "set the x-dubbo-service-method-overloading header (e.g. 'java.lang.String,int') "
    "or the route's dubbo.parameter_types.{method}"
)
DEFAULT_CONNECT_TIMEOUT = 3.0
# Attachments the gateway sets itself; a client header must not redirect the call.
_RESERVED_ATTACHMENTS = frozenset(
    {
        "path",
        "interface",
        "version",
        "group",
        "timeout",
        "generic",
        "dubbo",
        "input",
        "output",
        "remote.application",
    }
)
_LONG_TYPES = frozenset({"long", "java.lang.Long"})
# How Java (RpcException, SERVICE_ERROR) and dubbo-go (a java.lang.Throwable)
# say that the service or method does not exist; both answer as if it were a
# business failure, but it is the caller's path that is wrong. What the peers
# send is recorded in tests/unit/test_upstream_error_contract.py.
_NOT_FOUND_MARKERS = (
    # Java 3.3, status 70, from DubboProtocol.getInvoker: "RemotingException: Not
    # found exported service: g9/X:1.0.0:port in [...], may be version or group
    # mismatch". Java 3.3 gets this far only for an unknown *group* (see
    # _UNRESOLVED_GENERIC_CALL); Dubbo 2.7 says it for an unknown interface too.
    "Not found exported service",
    # Java GenericFilter, status 70: "RpcException: No such method nope in class
    # interface X", also for a method that exists with other parameter types.
    "No such method",
    "NoSuchMethodException",
    # dubbo-go 3.3, an exception response (java.lang.Throwable): '"nope" method
    # is not found, service key: g1/X:1.0.0'.
    "method is not found",
    # dubbo-go 3.3, the same: "don't have this exporter, key: g9/X:1.0.0" for an
    # unknown interface, group or version, or none.
    "don't have this exporter",
)
# Java 3.3 answers status 40 BAD_REQUEST "Fail to decode request due to:
# RpcInvocation [methodName=$invoke, parameterTypes=null]" when no exported
# service has the call's interface and version: an unknown interface, an
# unknown version, or no version for a versioned service. Its decoder looks up
# interface:version (groups aside) before it reads the arguments and logs
# "Service X:9.9.9 not found, invocation rejected."; DubboCodec then stores the
# invocation in place of that exception, so only the invocation's toString()
# reaches the wire. "parameterTypes=null" says the provider stopped before it
# had read the arguments. Java says the same for argument bytes it cannot read,
# but meshgate's $invoke arguments (a String, a String[] and an Object[] of plain
# hessian values) decode without any service class (even an unknown or
# disallowed class in the Object[] decodes, as a map), so for what meshgate
# sends it is the lookup that failed. A request that fails to decode after its
# arguments shows "parameterTypes=[class java.lang.String, ...]" and, like any
# other status 40 text, stays INVALID_ARGUMENT.
_UNRESOLVED_GENERIC_CALL = re.compile(
    r"RpcInvocation \[methodName=" + re.escape(GENERIC_INVOKE) + r", parameterTypes=null\]"
)
# How the generic filters say that an argument cannot become its declared
# parameter type: the client's JSON is wrong, INVALID_ARGUMENT as a gRPC or
# Triple server would say.
_BAD_ARGUMENT_MARKERS = (
    # Java GenericFilter, status 70: "RpcException: java.lang.NumberFormatException:
    # For input string: "abc"", whatever PojoUtils.realize threw; only the stack
    # trace that follows says where it failed, so the whole text is read.
    "common.utils.PojoUtils.realize",
    # dubbo-go 3.3, an exception response (java.lang.Throwable): "realization of
    # arg[0] failed: realizing map failed, '' expected type 'int32', got
    # unconvertible type 'string', value: 'abc'".
    "realization of arg[",
)
# Exception classes the frameworks themselves throw: only these are read for the
# markers above, so a business exception that says "not found" stays a 500.
_FRAMEWORK_EXCEPTIONS = frozenset(
    {
        "java.lang.Throwable",
        "org.apache.dubbo.rpc.RpcException",
        "com.alibaba.dubbo.rpc.RpcException",
        "java.lang.NoSuchMethodException",
    }
)


def generic_arguments(call: GenericCall) -> tuple[list[str], list[Any]]:
    """Parameter types and hessian-ready arguments from the call's JSON body."""
    try:
        body: Any = orjson.loads(call.body) if call.body.strip() else []
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not JSON: {exc}") from None
    types = list(call.parameter_types or ())
    if isinstance(body, list):
        args = body
    elif isinstance(body, dict) and "class" not in body and len(types) > 1:
        raise BadRequest(
            f"{call.method} takes {len(types)} arguments: send them as a JSON "
            f"array, dubbo2 has no parameter names"
        )
    else:
        args = [body]
    if not types and args:
        raise BadRequest(
            f"parameter types of {call.interface}.{call.method} are unknown: {TYPES_HINT}"
        )
    for java_type in types:
        try:
            # $invoke carries the names as strings; a malformed one is caught here
            # rather than as a ClassNotFoundException deep in the provider.
            descriptor_of(java_type)
        except DubboCodecError as exc:
            raise BadRequest(f"parameter types of {call.method}: {exc}") from None
    if len(types) != len(args):
        raise BadRequest(
            f"{call.method}({', '.join(types)}) takes {len(types)} arguments, got {len(args)}"
        )
    return types, [_typed(t, from_jsonable(a)) for t, a in zip(types, args, strict=True)]


def _typed(java_type: str, value: Any) -> Any:
    # JSON has one number type; a declared long is sent as a hessian long so that
    # providers without Java's lenient conversion (dubbo-go) get what they expect.
    if java_type.strip() in _LONG_TYPES and isinstance(value, int) and not isinstance(value, bool):
        return JavaLong(value)
    return value


def build_invocation(call: GenericCall) -> Invocation:
    types, args = generic_arguments(call)
    extra: dict[str, Any] = {
        k: v for k, v in call.attachments.items() if k.lower() not in _RESERVED_ATTACHMENTS
    }
    extra["remote.application"] = call.application
    try:
        return generic_invocation(
            call.interface,
            call.method,
            types,
            args,
            version=call.version,
            group=call.group,
            timeout_ms=None if call.timeout is None else max(1, int(call.timeout * 1000)),
            attachments=extra,
        )
    except DubboCodecError as exc:
        raise BadRequest(f"parameter types {types}: {exc}") from None


def reply_for(response: Response, target: str) -> GenericReply:
    """A successful response as JSON, or the gateway error it stands for.

    Result attachments are not turned into headers: dubbo-go echoes every request
    attachment back, so they would mostly repeat the request.
    """
    if response.status != Status.OK:
        raise status_error(response)
    if response.exception is not None:
        raise exception_error(response.exception)
    try:
        body = orjson.dumps(to_jsonable(response.value))
    except (DubboCodecError, TypeError, orjson.JSONEncodeError) as exc:
        raise UpstreamStatus(
            f"{target}: result cannot be rendered as JSON: {exc}", grpc_code=13, http_status=502
        ) from None
    return GenericReply(body)


def _first_line(text: str) -> str:
    # Java puts whole stack traces into these messages; the first line says it all.
    return text.strip().split("\n", 1)[0].strip()


def _not_found(message: str) -> bool:
    return any(marker in message for marker in _NOT_FOUND_MARKERS)


def _bad_arguments(text: str) -> bool:
    return any(marker in text for marker in _BAD_ARGUMENT_MARKERS)


def exception_error(exception: Any) -> GatewayError:
    """A thrown exception: 500 UNKNOWN with ``Throwable.toString()``.

    A framework exception that says the service or method does not exist is 404
    NOT_FOUND, one that says an argument does not fit its type 400 INVALID_ARGUMENT.
    """
    class_name = exception.class_name if isinstance(exception, JavaObject) else "?"
    fields = exception.fields if isinstance(exception, JavaObject) else {}
    original, text = fields.get("exceptionClass"), fields.get("exceptionMessage")
    if isinstance(original, str) and isinstance(text, str):
        # Java's GenericFilter wraps the service's exception in a GenericException
        # that carries the original class and message as strings.
        class_name, message = original, f"{original}: {text}"
    else:
        message = exception_summary(exception)
    message = _first_line(message)
    details = [{"@type": "dubbo.exception", "class": class_name}]
    if class_name in _FRAMEWORK_EXCEPTIONS and _not_found(message):
        return UpstreamStatus(message, grpc_code=5, details=details)
    if class_name in _FRAMEWORK_EXCEPTIONS and _bad_arguments(message):
        return UpstreamStatus(message, grpc_code=3, details=details)
    return UpstreamStatus(message, grpc_code=2, details=details)


def status_error(response: Response) -> GatewayError:
    """A non-OK response status as the gateway's error."""
    text = response.failure_message() or f"status {response.status}"
    message = _first_line(text)
    status = response.status
    if status == Status.SERVICE_NOT_FOUND or (
        status == Status.SERVICE_ERROR and _not_found(message)
    ):
        return UpstreamStatus(message, grpc_code=5)
    if status == Status.BAD_REQUEST and _UNRESOLVED_GENERIC_CALL.search(message):
        return UpstreamStatus(
            f"no exported service matches this interface and version ({message})", grpc_code=5
        )
    if status == Status.SERVICE_ERROR and _bad_arguments(text):
        return UpstreamStatus(message, grpc_code=3)
    if status in (Status.CLIENT_TIMEOUT, Status.SERVER_TIMEOUT):
        return UpstreamStatus(message, grpc_code=4)
    if status == Status.SERVER_THREADPOOL_EXHAUSTED_ERROR:
        # Overload of this one provider, transient: UNAVAILABLE lets a retry policy
        # (`on: [unavailable]`) go to another endpoint; 429 would blame the client.
        return UpstreamUnavailable(message)
    if status == Status.BAD_REQUEST:
        # The provider could not decode the request: "Fail to decode request due
        # to: ..." (Java's HeaderExchangeHandler for a broken request).
        return UpstreamStatus(message, grpc_code=3)
    if status in (Status.BAD_RESPONSE, Status.CLIENT_ERROR):
        # Undecodable bytes between the two ends: a bad gateway, not a bad service.
        return UpstreamStatus(message, grpc_code=13, http_status=502)
    return UpstreamStatus(message, grpc_code=13)


class DubboUpstream:
    """Pooled dubbo2 connections of one worker, one per endpoint address."""

    def __init__(
        self,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        heartbeat: float = DEFAULT_HEARTBEAT,
        missed_limit: int = DEFAULT_MISSED_LIMIT,
        tls: TlsTransports | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._heartbeat = heartbeat
        self._missed_limit = missed_limit
        self._owns_tls = tls is None
        self._tls = tls or TlsTransports()
        self._connections: dict[ConnectionKey, DubboConnection] = {}
        # One opener per key: concurrent first calls share one connect.
        self._opening: dict[ConnectionKey, asyncio.Task[DubboConnection]] = {}

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
        invocation = build_invocation(call)
        target = f"dubbo {address} {call.interface}.{call.method}"
        try:
            async with asyncio.timeout(call.timeout):
                connection = await self.connection(address, security)
                response = await connection.request(invocation)
        except TimeoutError:
            raise UpstreamStatus(
                f"{target}: no answer within {call.timeout:g}s", grpc_code=4
            ) from None
        except ConnectionLost as exc:
            failure = self._tls.failure(address, security, ()) if security else None
            raise UpstreamUnavailable(f"{target}: {failure or exc}", cause=RESET) from None
        except DubboCodecError as exc:
            raise BadRequest(f"{target}: arguments cannot be encoded: {exc}") from None
        return reply_for(response, target)

    async def connection(
        self, address: str, security: UpstreamTls | None = None
    ) -> DubboConnection:
        key = (address, security)
        connection = self._connections.get(key)
        if connection is not None and connection.usable:
            return connection
        task = self._opening.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(key, connection))
            self._opening[key] = task
            task.add_done_callback(lambda t: self._opened(key, t))
        # Shielded: one caller's deadline must not abort the connect others wait on.
        return await asyncio.shield(task)

    def _opened(self, key: ConnectionKey, task: asyncio.Task[DubboConnection]) -> None:
        self._opening.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have given up already

    async def _open(self, key: ConnectionKey, stale: DubboConnection | None) -> DubboConnection:
        address, security = key
        if stale is not None and stale.in_flight == 0:
            await stale.close()
        # A read-only connection with calls in flight is left to finish them: the
        # provider that sent "R" closes it when it shuts down.
        try:
            connection = await DubboConnection.open(
                address,
                connect_timeout=self._connect_timeout,
                heartbeat=self._heartbeat,
                missed_limit=self._missed_limit,
                socket_path=(
                    await self._tls.socket_path(address, security, ()) if security else None
                ),
            )
        except TimeoutError:
            raise UpstreamUnavailable(
                f"dubbo {address}: connect timed out after {self._connect_timeout:g}s",
                cause=CONNECT_FAILURE,
            ) from None
        except (OSError, ValueError) as exc:
            raise UpstreamUnavailable(f"dubbo {address}: {exc}", cause=CONNECT_FAILURE) from None
        self._connections[key] = connection
        return connection

    def connections(self) -> Sequence[DubboConnection]:
        return list(self._connections.values())

    async def retain(self, addresses: Collection[str]) -> None:
        """Close the idle connections of providers that left every cluster; a
        connection with calls in flight is left to finish them and goes at a
        later round."""
        for key, connection in list(self._connections.items()):
            if key[0] not in addresses and connection.in_flight == 0:
                del self._connections[key]
                await connection.close()

    async def close(self) -> None:
        for task in list(self._opening.values()):
            task.cancel()
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            await connection.close()
        if self._owns_tls:
            await self._tls.close()
