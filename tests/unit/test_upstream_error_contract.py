"""One contract for upstream errors: one failure is one gateway error, whatever the protocol.

Each protocol says a failure its own way: a gRPC status (plain gRPC, and Triple in gRPC mode), an
HTTP status and JSON body (Triple's HTTP/JSON mode, Java's ``{"message","status"}`` or dubbo-go's
Connect ``{"code","message"}``), or a dubbo2 response (a status byte and a message, or an OK
response carrying an exception). The table below holds, per canonical failure and protocol, what
a real peer sends, and the test runs it through that protocol's pure translation function:

* grpc: ``gateway.upstream.grpc.upstream_error``;
* triple-grpc: ``gateway.upstream.triple.normalize_triple_error(upstream_error(...))``;
* triple-json: ``gateway.upstream.triple_json.error_from_response``;
* dubbo2: ``gateway.upstream.dubbo.status_error`` (non-OK status) or ``exception_error``.

"observed" means the vector was captured from the peers of tests/peers (Java Dubbo 3.3.6, dubbo-go
3.3.2, Dubbo Python 3.0.0b1) or a grpcio server; tests/integration/test_dubbo_interop.py checks the
same paths end to end. Stack traces are abridged to the lines the translation reads.

A case a protocol cannot express is a row with ``skip``. One deliberate exception, ``GRPC_NATIVE``:
over gRPC (plain, and Triple in gRPC mode) the backend's own status is passed through as gRPC's
table maps it, as Envoy's transcoder and grpc-gateway do, so an unknown service or method stays
UNIMPLEMENTED (501); the Dubbo route kinds (Triple JSON, dubbo2) have no such code and answer 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import orjson
import pytest
from google.rpc import status_pb2

from gateway.dubbo.hessian2_types import JavaObject
from gateway.dubbo.protocol import Response, ResponseKind, Status
from gateway.errors import GatewayError
from gateway.upstream.dubbo import exception_error, status_error
from gateway.upstream.grpc import upstream_error
from gateway.upstream.triple import normalize_triple_error
from gateway.upstream.triple_json import error_from_response

USERS = "org.apache.dubbo.meshgate.UserService"
GREETER = "meshgate.interop.v1.Greeter"

# The canonical failures and the gateway error each must become: (gRPC code, HTTP status).
CANONICAL: dict[str, tuple[int, int]] = {
    "unknown service": (5, 404),  # NOT_FOUND; also an unknown Dubbo group or version
    "unknown method": (5, 404),  # NOT_FOUND
    "bad arguments": (3, 400),  # INVALID_ARGUMENT
    "deadline exceeded": (4, 504),  # DEADLINE_EXCEEDED
    "unavailable": (14, 503),  # UNAVAILABLE: unreachable or overloaded, worth a retry
    "business exception": (2, 500),  # UNKNOWN: the service's own code threw
    "internal error": (13, 500),  # INTERNAL: the server or its framework failed
    "unauthenticated": (16, 401),  # UNAUTHENTICATED
}
PROTOCOLS = ("grpc", "triple-grpc", "triple-json", "dubbo2")


# --- the shapes of a failure -----------------------------------------------------------------


@dataclass(frozen=True)
class GrpcStatus:
    code: grpc.StatusCode
    details: str
    trailing: tuple[tuple[str, str | bytes], ...] = ()


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes


def go_details(code: int, message: str) -> tuple[tuple[str, bytes], ...]:
    """dubbo-go's trailer: google.rpc.Status{code, message}, no details (observed bytes)."""
    status = status_pb2.Status(code=code, message=message)
    return (("grpc-status-details-bin", status.SerializeToString()),)


def dubbo_status(status: Status, message: str) -> Response:
    return Response(1, status, error_message=message)


def dubbo_exception(exception: JavaObject) -> Response:
    return Response(1, Status.OK, ResponseKind.EXCEPTION, exception=exception)


def go_throwable(message: str) -> Response:
    """dubbo-go's exception response: a java.lang.Throwable whose detailMessage is Go's error."""
    return dubbo_exception(JavaObject("java.lang.Throwable", {"detailMessage": message}))


# What Java 3.3.6 sends, status 40, when no exported service has the call's interface and version
# (logged as "Service X:V not found, invocation rejected."; the wire carries only this).
JAVA_UNRESOLVED = (
    "Fail to decode request due to: RpcInvocation [methodName=$invoke, parameterTypes=null]"
)
JAVA_NO_SUCH_METHOD = (
    "org.apache.dubbo.rpc.RpcException: No such method nope in class interface " + USERS + "\n"
    "org.apache.dubbo.rpc.RpcException: No such method nope in class interface " + USERS + "\n"
    "\tat org.apache.dubbo.rpc.filter.GenericFilter.invoke(GenericFilter.java:220)\n"
    "Caused by: java.lang.NoSuchMethodException: No such method nope in class interface "
    + USERS
    + "\n"
    "\tat org.apache.dubbo.rpc.filter.GenericFilter.findMethodByMethodSignature("
    "GenericFilter.java:295)\n"
)
JAVA_NOT_EXPORTED = (
    "org.apache.dubbo.remoting.RemotingException: Not found exported service: g9/"
    + USERS
    + ":1.0.0:20880 in [g1/"
    + USERS
    + ":1.0.0:20880, g2/"
    + USERS
    + ":2.0.0:20880], may be "
    "version or group mismatch , channel: consumer: /127.0.0.1:55498 --> provider: "
    "/127.0.0.1:20880, message:RpcInvocation [methodName=$invoke, parameterTypes=[class "
    "java.lang.String, class [Ljava.lang.String;, class [Ljava.lang.Object;]]\n"
    "\tat org.apache.dubbo.rpc.protocol.dubbo.DubboProtocol.getInvoker(DubboProtocol.java:318)\n"
)
JAVA_BAD_ARGUMENT = (
    'org.apache.dubbo.rpc.RpcException: java.lang.NumberFormatException: For input string: "abc"\n'
    'org.apache.dubbo.rpc.RpcException: java.lang.NumberFormatException: For input string: "abc"\n'
    "\tat org.apache.dubbo.rpc.filter.GenericFilter.invoke(GenericFilter.java:130)\n"
    'Caused by: java.lang.NumberFormatException: For input string: "abc"\n'
    "\tat java.base/java.lang.Integer.parseInt(Integer.java:668)\n"
    "\tat org.apache.dubbo.common.utils.CompatibleTypeUtils.compatibleTypeConvert("
    "CompatibleTypeUtils.java:86)\n"
    "\tat org.apache.dubbo.common.utils.PojoUtils.realize1(PojoUtils.java:370)\n"
    "\tat org.apache.dubbo.common.utils.PojoUtils.realize(PojoUtils.java:130)\n"
    "\tat org.apache.dubbo.rpc.filter.GenericFilter.invoke(GenericFilter.java:121)\n"
    "\t... 24 more\n"
)


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    case: str
    protocol: str
    peer: str  # who sends it, and whether it was observed
    vector: Any = None  # the protocol's own failure; None with skip
    skip: str = ""  # the protocol cannot express the case: why
    # The expected (gRPC code, HTTP status) when it is not the case's canonical one: why.
    expect: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        assert self.case in CANONICAL and self.protocol in PROTOCOLS, self
        assert (self.vector is None) == bool(self.skip), self


# gRPC says 'no such service or method' with UNIMPLEMENTED; a gRPC status from the backend
# passes through unchanged, by gRPC's own table (as Envoy and grpc-gateway answer).
GRPC_NATIVE = (12, 501)
JAVA_FALLS_BACK = (
    "Java 3.3.6 has no such answer in Triple: an unknown group or version is served by another "
    "provider of the interface (observed: g9/1.0.0 and g1/9.9.9 both answered by g1/1.0.0)"
)
DUBBO2_NO_AUTH = (
    "dubbo2 has no status for it: Dubbo's token/auth filters throw an RpcException, which "
    "arrives as status 70 SERVICE_ERROR like any other framework failure"
)

ROWS: list[Row] = [
    # --- unknown service (interface, or Dubbo group/version) ---
    Row(
        "unknown service",
        "grpc",
        "grpcio server, observed",
        GrpcStatus(grpc.StatusCode.UNIMPLEMENTED, "Method not found!"),
        expect=GRPC_NATIVE,
    ),
    Row(
        "unknown service",
        "triple-grpc",
        "Java 3.3.6, unknown interface, observed",
        GrpcStatus(grpc.StatusCode.UNIMPLEMENTED, "Invoker for gRPC not found"),
        expect=GRPC_NATIVE,
    ),
    Row(
        "unknown service",
        "triple-grpc",
        "dubbo-go 3.3.2, unknown group, observed",
        GrpcStatus(
            grpc.StatusCode.UNIMPLEMENTED,
            "no implementation found for service group g9 and service version 1.0.0",
            go_details(
                12, "no implementation found for service group g9 and service version 1.0.0"
            ),
        ),
        expect=GRPC_NATIVE,
    ),
    Row(
        "unknown service",
        "triple-grpc",
        "Java 3.3.6, unknown group or version",
        skip=JAVA_FALLS_BACK,
    ),
    Row(
        "unknown service",
        "triple-json",
        "Java 3.3.6, unknown interface, observed",
        HttpAnswer(404, b'{"message":"Invoker not found","status":"404"}'),
    ),
    Row(
        "unknown service",
        "triple-json",
        "Java 3.3.6, unknown group or version",
        skip=JAVA_FALLS_BACK,
    ),
    Row(
        "unknown service",
        "triple-json",
        "dubbo-go 3.3.2, unknown interface (mux), observed",
        HttpAnswer(404, b"404 page not found\n"),
    ),
    Row(
        "unknown service",
        "triple-json",
        "dubbo-go 3.3.2, unknown group g9, observed",
        HttpAnswer(
            404,
            b'{"code":"unimplemented","message":"no implementation found for '
            b'service group g9 and service version 1.0.0"}',
        ),
    ),
    Row(
        "unknown service",
        "dubbo2",
        "Java 3.3.6, unknown interface, observed",
        dubbo_status(Status.BAD_REQUEST, JAVA_UNRESOLVED),
    ),
    Row(
        "unknown service",
        "dubbo2",
        "Java 3.3.6, unknown version (g1/9.9.9), observed",
        dubbo_status(Status.BAD_REQUEST, JAVA_UNRESOLVED),
    ),
    Row(
        "unknown service",
        "dubbo2",
        "Java 3.3.6, no group/version for a versioned service, observed",
        dubbo_status(Status.BAD_REQUEST, JAVA_UNRESOLVED),
    ),
    Row(
        "unknown service",
        "dubbo2",
        "Java 3.3.6, unknown group (g9/1.0.0), observed",
        dubbo_status(Status.SERVICE_ERROR, JAVA_NOT_EXPORTED),
    ),
    Row(
        "unknown service",
        "dubbo2",
        "dubbo-go 3.3.2, unknown interface, observed",
        go_throwable("don't have this exporter, key: g1/com.acme.Nope:1.0.0"),
    ),
    Row(
        "unknown service",
        "dubbo2",
        "dubbo-go 3.3.2, unknown group, observed",
        go_throwable(f"don't have this exporter, key: g9/{USERS}:1.0.0"),
    ),
    Row(
        "unknown service",
        "dubbo2",
        "dubbo-go 3.3.2, unknown version, observed",
        go_throwable(f"don't have this exporter, key: g1/{USERS}:9.9.9"),
    ),
    Row(
        "unknown service",
        "dubbo2",
        "dubbo-go 3.3.2, no group/version, observed",
        go_throwable(f"don't have this exporter, key: {USERS}"),
    ),
    Row(
        "unknown service",
        "dubbo2",
        "Dubbo's SERVICE_NOT_FOUND status, not observed",
        dubbo_status(Status.SERVICE_NOT_FOUND, "no service"),
    ),
    # --- unknown method ---
    Row(
        "unknown method",
        "grpc",
        "grpcio server, observed",
        GrpcStatus(grpc.StatusCode.UNIMPLEMENTED, "Method not found!"),
        expect=GRPC_NATIVE,
    ),
    Row(
        "unknown method",
        "triple-grpc",
        "dubbo-go 3.3.2 (HTTP 404, as grpcio reports it), observed",
        GrpcStatus(grpc.StatusCode.UNIMPLEMENTED, "Received http2 header with status: 404"),
        expect=GRPC_NATIVE,
    ),
    Row(
        "unknown method",
        "triple-grpc",
        "Java 3.3.6",
        skip='Java 3.3.6 answers UNKNOWN \'Cannot invoke "java.util.List.iterator()" because '
        '"methodDescriptors" is null\' (observed): a NullPointerException, no different '
        "from a provider fault. meshgate transcodes from descriptors and answers an unknown "
        "method with its own 404 before calling",
    ),
    Row(
        "unknown method",
        "triple-json",
        "Java 3.3.6, observed",
        HttpAnswer(404, b'{"message":"Invoker not found","status":"404"}'),
    ),
    Row(
        "unknown method",
        "triple-json",
        "dubbo-go 3.3.2 (mux), observed",
        HttpAnswer(404, b"404 page not found\n"),
    ),
    Row(
        "unknown method",
        "dubbo2",
        "Java 3.3.6 GenericFilter, observed",
        dubbo_status(Status.SERVICE_ERROR, JAVA_NO_SUCH_METHOD),
    ),
    Row(
        "unknown method",
        "dubbo2",
        "dubbo-go 3.3.2, observed",
        go_throwable(f'"nope" method is not found, service key: g1/{USERS}:1.0.0'),
    ),
    # --- bad arguments ---
    Row(
        "bad arguments",
        "grpc",
        "any gRPC service validating its request",
        GrpcStatus(grpc.StatusCode.INVALID_ARGUMENT, "name must not be empty"),
    ),
    Row(
        "bad arguments",
        "triple-grpc",
        "dubbo-go 3.3.2, undecodable request, observed",
        GrpcStatus(
            grpc.StatusCode.INVALID_ARGUMENT,
            "unmarshal into *greeterpb.HelloRequest: proto: cannot parse invalid wire-format data",
            go_details(
                3,
                "unmarshal into *greeterpb.HelloRequest: proto: cannot parse "
                "invalid wire-format data",
            ),
        ),
    ),
    Row(
        "bad arguments",
        "triple-grpc",
        "Java 3.3.6",
        skip="Java 3.3.6 answers an undecodable request with UNKNOWN 'Internal Server Error' "
        "(observed), no different from a provider fault",
    ),
    Row(
        "bad arguments",
        "triple-json",
        "Java 3.3.6, an object for a long, observed",
        HttpAnswer(
            400,
            b'{"message":"Could not convert argument \'id\' value \'{\\"q\\":1}\' '
            b'from type [class com.alibaba.fastjson2.JSONObject] to type [long]",'
            b'"status":"400"}',
        ),
    ),
    Row(
        "bad arguments",
        "triple-json",
        "Java 3.3.6, a string for an int",
        skip='Java 3.3.6 answers 500 {"message":"For input string: \\"x\\"","status":'
        "\"500\"} (observed; 'Error decoding json' for malformed JSON): the shape of a "
        "business exception, with no class to tell them apart",
    ),
    Row(
        "bad arguments",
        "triple-json",
        "dubbo-go 3.3.2, observed",
        HttpAnswer(
            400,
            b'{"code":"invalid_argument","message":"unmarshal into '
            b"*greeterpb.HelloRequest: proto: syntax error (line 1:1): "
            b'unexpected token ["}',
        ),
    ),
    Row(
        "bad arguments",
        "dubbo2",
        "Java 3.3.6 GenericFilter, 'abc' for an int, observed",
        dubbo_status(Status.SERVICE_ERROR, JAVA_BAD_ARGUMENT),
    ),
    Row(
        "bad arguments",
        "dubbo2",
        "dubbo-go 3.3.2, 'abc' for an int32, observed",
        go_throwable(
            "realization of arg[0] failed: realizing map failed, '' expected type "
            "'int32', got unconvertible type 'string', value: 'abc'"
        ),
    ),
    Row(
        "bad arguments",
        "dubbo2",
        "Java 3.3.6, undecodable attachments after the arguments, observed",
        dubbo_status(
            Status.BAD_REQUEST,
            "Fail to decode request due to: RpcInvocation [methodName="
            "$invoke, parameterTypes=[class java.lang.String, class "
            "[Ljava.lang.String;, class [Ljava.lang.Object;]]",
        ),
    ),
    Row(
        "bad arguments",
        "dubbo2",
        "Dubbo 2.7 decoding on a worker thread, not observed",
        dubbo_status(
            Status.BAD_REQUEST,
            "Fail to decode request due to: java.io.IOException: "
            "Read invocation data failed.\n\tat ...",
        ),
    ),
    # --- deadline exceeded ---
    Row(
        "deadline exceeded",
        "grpc",
        "grpcio, observed",
        GrpcStatus(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
    ),
    Row(
        "deadline exceeded",
        "triple-grpc",
        "dubbo-go 3.3.2, its own timer first, observed",
        GrpcStatus(grpc.StatusCode.UNKNOWN, "context deadline exceeded"),
    ),
    Row(
        "deadline exceeded",
        "triple-json",
        "Java 3.3.6, tri-service-timeout, observed",
        HttpAnswer(408, b'{"message":"Request Timeout","status":"408"}'),
    ),
    Row(
        "deadline exceeded",
        "triple-json",
        "dubbo-go 3.3.2, Triple-Timeout-Ms, observed",
        HttpAnswer(500, b'{"code":"code_17","message":"context deadline exceeded"}'),
    ),
    Row(
        "deadline exceeded",
        "dubbo2",
        "Dubbo's SERVER_TIMEOUT status, not observed: neither "
        "peer answers a late call early (slow(2000) with timeout=200 answered after 2 s)",
        dubbo_status(Status.SERVER_TIMEOUT, "Waiting server-side response timeout."),
    ),
    # --- unavailable / overloaded ---
    Row(
        "unavailable",
        "grpc",
        "grpcio, connection refused, observed",
        GrpcStatus(
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last "
            "error: UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote host: "
            "Connection refused",
        ),
    ),
    Row(
        "unavailable",
        "triple-grpc",
        "grpcio, connection refused, observed",
        GrpcStatus(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"),
    ),
    Row(
        "unavailable",
        "triple-json",
        "Java's REST status 503, not observed",
        HttpAnswer(503, b'{"message":"Service Unavailable","status":"503"}'),
    ),
    Row(
        "unavailable",
        "triple-json",
        "dubbo-go's Connect code, not observed",
        HttpAnswer(503, b'{"code":"unavailable","message":"overloaded"}'),
    ),
    Row(
        "unavailable",
        "dubbo2",
        "Java 3.3.6, 230 concurrent calls on 200 threads, observed",
        dubbo_status(
            Status.SERVER_THREADPOOL_EXHAUSTED_ERROR,
            "Server side(192.0.2.2,43877) thread pool is exhausted, detail msg:Thread "
            "pool is EXHAUSTED! Thread Name: DubboServerHandler-192.0.2.2:43877, Pool "
            "Size: 200 (active: 200, core: 200, max: 200, largest: 200)",
        ),
    ),
    # --- business exception ---
    Row(
        "business exception",
        "grpc",
        "grpcio server, a handler raising, observed",
        GrpcStatus(grpc.StatusCode.UNKNOWN, "Unexpected <class 'RuntimeError'>: boom"),
    ),
    Row(
        "business exception",
        "triple-grpc",
        "dubbo-go 3.3.2, a handler's plain Go error (triple_protocol.CodeOf), not observed",
        GrpcStatus(grpc.StatusCode.UNKNOWN, "boom"),
    ),
    Row(
        "business exception",
        "triple-json",
        'Java 3.3.6, fail("boom"), observed',
        HttpAnswer(500, b'{"message":"boom","status":"500"}'),
    ),
    Row(
        "business exception",
        "triple-json",
        "dubbo-go 3.3.2",
        skip="dubbo-go serves only protobuf (IDL) services in Triple JSON mode; a handler's plain "
        "Go error would be Connect 'unknown', not observed",
    ),
    Row(
        "business exception",
        "dubbo2",
        'Java 3.3.6, fail("boom") via GenericFilter, observed',
        dubbo_exception(
            JavaObject(
                "com.alibaba.dubbo.rpc.service.GenericException",
                {
                    "detailMessage": "org.apache.dubbo.meshgate.UserServiceException: boom\n"
                    "org.apache.dubbo.meshgate.UserServiceException: boom\n\tat ...",
                    "exceptionMessage": "boom",
                    "exceptionClass": "org.apache.dubbo.meshgate.UserServiceException",
                },
            )
        ),
    ),
    Row(
        "business exception",
        "dubbo2",
        "dubbo-go 3.3.2, Fail returning errors.New, observed",
        go_throwable("boom"),
    ),
    # --- internal error ---
    Row(
        "internal error",
        "grpc",
        "a gRPC server's INTERNAL",
        GrpcStatus(grpc.StatusCode.INTERNAL, "Exception serializing response!"),
    ),
    Row(
        "internal error",
        "triple-grpc",
        "Dubbo Python 3.0.0b1, every handler exception, observed",
        GrpcStatus(
            grpc.StatusCode.INTERNAL, "Invoke method failed: greeter business failure for ada"
        ),
    ),
    Row(
        "internal error",
        "triple-json",
        "dubbo-go 3.3.2, a POJO service over Triple, observed",
        HttpAnswer(500, b'{"code":"internal","message":"EOF"}'),
    ),
    Row(
        "internal error",
        "triple-json",
        "Java 3.3.6",
        skip="Java's body has only message and HTTP status: its 500 is the business exception's "
        "500, so an internal error cannot be told apart",
    ),
    Row(
        "internal error",
        "dubbo2",
        "Dubbo's SERVER_ERROR status, not observed",
        dubbo_status(Status.SERVER_ERROR, "java.lang.IllegalStateException: oops\n\tat ..."),
    ),
    Row(
        "internal error",
        "dubbo2",
        "Java 3.3.6, an unknown parameter type class, observed",
        dubbo_status(
            Status.SERVICE_ERROR,
            "org.apache.dubbo.rpc.RpcException: com.acme.NoSuchClass\n"
            "Caused by: java.lang.ClassNotFoundException: com.acme.NoSuchClass\n",
        ),
    ),
    # --- unauthenticated ---
    Row(
        "unauthenticated",
        "grpc",
        "a gRPC server's UNAUTHENTICATED",
        GrpcStatus(grpc.StatusCode.UNAUTHENTICATED, "missing credentials"),
    ),
    Row(
        "unauthenticated",
        "triple-grpc",
        "a Triple server's UNAUTHENTICATED (gRPC status)",
        GrpcStatus(grpc.StatusCode.UNAUTHENTICATED, "missing credentials"),
    ),
    Row(
        "unauthenticated",
        "triple-json",
        "Java's REST status 401, not observed",
        HttpAnswer(401, b'{"message":"Unauthorized","status":"401"}'),
    ),
    Row(
        "unauthenticated",
        "triple-json",
        "dubbo-go's Connect code, not observed",
        HttpAnswer(401, b'{"code":"unauthenticated","message":"missing credentials"}'),
    ),
    Row("unauthenticated", "dubbo2", "Java and dubbo-go", skip=DUBBO2_NO_AUTH),
]


# --- the translation of each protocol --------------------------------------------------------


def _aio_error(vector: GrpcStatus) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        vector.code, grpc.aio.Metadata(), grpc.aio.Metadata(*vector.trailing), vector.details
    )


def _dubbo2(response: Response) -> GatewayError:
    if response.status != Status.OK:
        return status_error(response)
    return exception_error(response.exception)


TRANSLATE: dict[str, Any] = {
    "grpc": lambda vector: upstream_error(_aio_error(vector)),
    "triple-grpc": lambda vector: normalize_triple_error(upstream_error(_aio_error(vector))),
    "triple-json": lambda vector: error_from_response(
        vector.status, vector.body, f"triple 127.0.0.1:50052/{GREETER}/M"
    ),
    "dubbo2": _dubbo2,
}


def _params() -> list[Any]:
    params = []
    for row in ROWS:
        marks: list[Any] = []
        if row.skip:
            marks.append(pytest.mark.skip(reason=f"{row.protocol} cannot say it: {row.skip}"))
        params.append(pytest.param(row, marks=marks, id=f"{row.case}|{row.protocol}|{row.peer}"))
    return params


@pytest.mark.parametrize("row", _params())
def test_same_failure_same_gateway_error(row: Row) -> None:
    error = TRANSLATE[row.protocol](row.vector)
    code, http = row.expect or CANONICAL[row.case]
    assert isinstance(error, GatewayError)
    assert (int(error.grpc_code), error.status) == (code, http), error.message
    body = orjson.loads(error.body())
    assert body["code"] == code
    assert body["message"] and "\n" not in body["message"]


def test_every_case_has_a_row_for_every_protocol() -> None:
    """A case a protocol cannot say is a skip row with its reason, never a missing row."""
    covered = {(row.case, row.protocol) for row in ROWS}
    missing = [
        (case, protocol)
        for case in CANONICAL
        for protocol in PROTOCOLS
        if (case, protocol) not in covered
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("details", "cause"),
    [
        (
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1:"
            " Failed to connect to remote host: Connection refused",
            "connect_failure",
        ),
        ("Socket closed", "reset"),
        ("recvmsg:Connection reset by peer", "reset"),
        ("Received RST_STREAM with error code 7 REFUSED_STREAM", "refused_stream"),
        ("GOAWAY received", "reset"),
        ("backend is draining", None),
    ],
)
def test_grpc_transport_failures_carry_their_cause(details: str, cause: str | None) -> None:
    """The words gRPC core uses (as met on loopback: a closed port, a killed
    server), so retry_on connect-failure / reset / refused-stream can act."""
    from gateway.upstream.grpc import transport_cause

    assert transport_cause(details) == cause
