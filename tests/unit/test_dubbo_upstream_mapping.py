"""The sans-IO halves of the Triple-JSON and dubbo2 upstreams: requests built, answers mapped.

The bodies and statuses below are the ones the real peers sent (tests/peers/README.md and
tests/integration/test_dubbo_interop.py, which checks the same paths end to end).
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.dubbo.hessian2_types import JavaLong, JavaObject, TypedList
from gateway.dubbo.invocation import GENERIC_INVOKE
from gateway.dubbo.protocol import Response, ResponseKind, Status
from gateway.errors import BadRequest, GatewayError, UpstreamUnavailable
from gateway.upstream.dubbo import build_invocation, reply_for
from gateway.upstream.generic import GenericCall
from gateway.upstream.triple_json import (
    error_from_response,
    method_signature,
    request_headers,
    request_path,
)

USERS = "org.apache.dubbo.meshgate.UserService"


def call(body: bytes, types: list[str] | None = None, **extra: Any) -> GenericCall:
    return GenericCall(USERS, "greet", body, parameter_types=types, **extra)


# --- Triple HTTP/JSON -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("types", "signature"),
    [
        ([], None),
        (["java.lang.String"], "S"),
        (["java.lang.String", "int"], "Si"),
        (["long", "java.util.List", "org.apache.dubbo.meshgate.User"], "lLU"),
        (["java.lang.String[]"], "S"),  # Class.getName() "[Ljava.lang.String;"
        (["[Ljava.lang.String;"], "S"),
        (["int[]"], "["),  # "[I" has no dot: its first character
        (["Outer$Inner"], "O"),
    ],
)
def test_method_signature_follows_dubbo_build_sig(types: list[str], signature: str | None) -> None:
    assert method_signature(types) == signature


def test_request_path_and_headers() -> None:
    greet = call(
        b'["bo", 3]',
        ["java.lang.String", "int"],
        group="g2",
        version="2.0.0",
        timeout=1.5,
        attachments={"x-trace": "t1", "tri-service-group": "evil", "Content-Type": "text/plain"},
    )
    assert request_path(greet) == f"/{USERS}/greet~Si"
    assert request_path(call(b"[]")) == f"/{USERS}/greet"
    assert request_headers(greet) == {
        "x-trace": "t1",
        "content-type": "application/json",
        "tri-consumer-appname": "meshgate",
        "triple-protocol-version": "0.1.0",
        "tri-service-group": "g2",
        "tri-service-version": "2.0.0",
        "tri-service-timeout": "1500",
        "triple-timeout-ms": "1500",
    }


@pytest.mark.parametrize(
    ("status", "body", "code", "http", "message"),
    [
        (404, b'{"message":"Invoker not found","status":"404"}', 5, 404, "Invoker not found"),
        (500, b'{"message":"boom","status":"500"}', 2, 500, "boom"),
        (400, b'{"message":"bad arg","status":"400"}', 3, 400, "bad arg"),
        (
            412,
            b'{"code":"failed_precondition","message":"greeter business failure for ada"}',
            9,
            400,
            "greeter business failure for ada",
        ),
        (
            # dubbo-go's "no provider for that group/version": an unknown service,
            # 404 like every Dubbo mode (tests/unit/test_upstream_error_contract.py).
            404,
            b'{"code":"unimplemented","message":"no implementation found"}',
            5,
            404,
            "no implementation found",
        ),
        (408, b'{"code":"canceled","message":"gone"}', 1, 499, "gone"),
        (404, b"404 page not found\n", 5, 404, "404 page not found"),
        (502, b"", 14, 503, "HTTP 502"),
        (418, b"<html>teapot</html>", 2, 500, "<html>teapot</html>"),
    ],
)
def test_error_from_response(status: int, body: bytes, code: int, http: int, message: str) -> None:
    error = error_from_response(status, body, "triple x")
    assert (error.grpc_code, error.status) == (code, http)
    assert message in error.message


# --- dubbo2 generic invocation --------------------------------------------------------------


def test_generic_invocation_carries_types_args_and_attachments() -> None:
    invocation = build_invocation(
        GenericCall(
            USERS,
            "getUser",
            b"[7]",
            group="g1",
            version="1.0.0",
            parameter_types=["long"],
            timeout=2.0,
            attachments={"x-trace": "t1", "group": "evil", "path": "evil"},
        )
    )
    assert invocation.method_name == GENERIC_INVOKE
    method, types, args = invocation.args
    assert method == "getUser"
    assert types == TypedList("[string", ["long"])
    assert args == TypedList("[object", [JavaLong(7)])
    assert isinstance(args.items[0], JavaLong)
    assert invocation.service_version == "1.0.0"
    assert dict(invocation.attachments) == {
        "path": USERS,
        "interface": USERS,
        "version": "1.0.0",
        "group": "g1",
        "timeout": "2000",
        "x-trace": "t1",
        "remote.application": "meshgate",
        "generic": "true",
    }


def test_generic_arguments_shapes() -> None:
    user = b'{"class": "org.apache.dubbo.meshgate.User", "id": 5}'
    invocation = build_invocation(
        GenericCall(USERS, "createUser", user, parameter_types=["org.apache.dubbo.meshgate.User"])
    )
    assert invocation.args[2].items == [JavaObject("org.apache.dubbo.meshgate.User", {"id": 5})]
    bare = build_invocation(call(b'"bo"', ["java.lang.String"]))
    assert bare.args[2].items == ["bo"]
    empty = build_invocation(GenericCall(USERS, "ping", b""))
    assert empty.args[1].items == [] and empty.args[2].items == []


@pytest.mark.parametrize(
    ("body", "types", "message"),
    [
        (b'["bo"]', None, "x-dubbo-service-method-overloading"),
        (b'["bo"]', ["java.lang.String", "int"], "takes 2 arguments, got 1"),
        (b'{"name": "bo", "times": 3}', ["java.lang.String", "int"], "send them as a JSON array"),
        (b"[1,", ["int"], "not JSON"),
        (b'["bo"]', ["java.lang.String;"], "malformed Java type name"),
    ],
)
def test_generic_arguments_errors_are_400(
    body: bytes, types: list[str] | None, message: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        build_invocation(call(body, types))
    assert caught.value.status == 400
    assert message in caught.value.message


def _ok(value: Any = None, exception: Any = None) -> Response:
    kind = (
        ResponseKind.EXCEPTION_WITH_ATTACHMENTS
        if exception is not None
        else (ResponseKind.VALUE_WITH_ATTACHMENTS)
    )
    return Response(1, Status.OK, kind, value, exception, {"dubbo": "2.0.2"})


def test_reply_values_become_json() -> None:
    user = JavaObject("org.apache.dubbo.meshgate.User", {"id": JavaLong(7), "tags": ["g1"]})
    assert reply_for(_ok(user), "t").body == (b'{"id":7,"tags":["g1"]}')
    assert reply_for(_ok(None), "t").body == b"null"


def _error(response: Response) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        reply_for(response, "dubbo x")
    return caught.value


def test_business_exceptions_are_500() -> None:
    wrapped = JavaObject(
        "com.alibaba.dubbo.rpc.service.GenericException",
        {
            "detailMessage": "org.apache.dubbo.meshgate.UserServiceException: boom\n\tat ...",
            "exceptionClass": "org.apache.dubbo.meshgate.UserServiceException",
            "exceptionMessage": "boom",
        },
    )
    error = _error(_ok(exception=wrapped))
    assert (error.status, error.grpc_code) == (500, 2)
    assert error.message == "org.apache.dubbo.meshgate.UserServiceException: boom"
    assert error.details == [
        {"@type": "dubbo.exception", "class": "org.apache.dubbo.meshgate.UserServiceException"}
    ]
    go = _error(_ok(exception=JavaObject("java.lang.Throwable", {"detailMessage": "boom"})))
    assert (go.status, go.grpc_code, go.message) == (500, 2, "java.lang.Throwable: boom")
    # A business message that happens to say "not found" stays a business failure.
    mine = JavaObject("com.acme.NotFound", {"detailMessage": "method is not found"})
    assert _error(_ok(exception=mine)).grpc_code == 2


@pytest.mark.parametrize(
    ("response", "http", "code"),
    [
        (Response(1, Status.SERVICE_NOT_FOUND, error_message="no service"), 404, 5),
        (
            Response(
                1,
                Status.SERVICE_ERROR,
                error_message=(
                    "org.apache.dubbo.rpc.RpcException: No such method nope in class "
                    "interface X\n\tat"
                ),
            ),
            404,
            5,
        ),
        (
            Response(
                1,
                Status.SERVICE_ERROR,
                error_message=(
                    "org.apache.dubbo.remoting.RemotingException: Not found exported service: g9/X"
                ),
            ),
            404,
            5,
        ),
        (
            _ok(
                exception=JavaObject(
                    "java.lang.Throwable",
                    {"detailMessage": '"nope" method is not found, service key: g1/X:1.0.0'},
                )
            ),
            404,
            5,
        ),
        (
            _ok(
                exception=JavaObject(
                    "java.lang.Throwable",
                    {"detailMessage": "don't have this exporter, key: g9/X:1.0.0"},
                )
            ),
            404,
            5,
        ),
        (Response(1, Status.CLIENT_TIMEOUT, error_message="late"), 504, 4),
        (Response(1, Status.SERVER_TIMEOUT, error_message="late"), 504, 4),
        (Response(1, Status.SERVER_THREADPOOL_EXHAUSTED_ERROR, error_message="busy"), 503, 14),
        (Response(1, Status.BAD_REQUEST, error_message="cannot decode"), 400, 3),
        (Response(1, Status.BAD_RESPONSE, error_message="cannot encode"), 502, 13),
        (Response(1, Status.CLIENT_ERROR, error_message="undecodable response"), 502, 13),
        (Response(1, Status.SERVER_ERROR, error_message="oops"), 500, 13),
        (Response(1, Status.SERVICE_ERROR, error_message="oops"), 500, 13),
    ],
)
def test_response_statuses(response: Response, http: int, code: int) -> None:
    error = _error(response)
    assert (error.status, error.grpc_code) == (http, code)
    assert "\n" not in error.message
    if code == 14:
        assert isinstance(error, UpstreamUnavailable)
