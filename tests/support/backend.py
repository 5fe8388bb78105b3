"""The tests' own gRPC backend: meshgate.test.v1.EchoService on grpc.aio.

Run as a process so the gateway under test talks to it over real sockets::

    python -m tests.support.backend --port 50051 --name v1
    python -m tests.support.backend --port 50051 --tls-cert s.pem --tls-key s.key --tls-ca ca.pem

With ``--tls-ca`` it requires a client certificate chained to that CA and
puts the client's SANs in the reply's ``metadata["x-client-identity"]``.

Messages come from a descriptor set compiled at start-up, so no generated code
is kept in the repository.

It also serves grpc.health.v1 (each Check prints a ``HEALTH_CHECK`` line, so
tests count probes) and, with ``--control FILE``, takes orders from that
file, read on every call: ``unavailable`` makes Echo answer UNAVAILABLE and
Check NOT_SERVING, ``slow:SECONDS`` delays every Echo; anything else (or no
file) is normal service.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection

from tests.support.grpc_server import serve_until_signalled
from tests.support.protos import echo_descriptor_set, load_pool, message_class

SERVICE = "meshgate.test.v1.EchoService"


def read_control(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(path) as control:
            return control.read().strip()
    except FileNotFoundError:
        return ""


def build_health_handler(control: str | None) -> grpc.GenericRpcHandler:
    async def check(request, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
        print("HEALTH_CHECK", flush=True)
        if request.service not in ("", SERVICE):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service}")
        serving = read_control(control) != "unavailable"
        status = health_pb2.HealthCheckResponse.SERVING if serving else 2  # NOT_SERVING
        return health_pb2.HealthCheckResponse(status=status)

    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            )
        },
    )


def build_handler(
    pool: DescriptorPool, name: str, control: str | None = None
) -> grpc.GenericRpcHandler:
    request_cls = message_class(pool, "meshgate.test.v1.EchoRequest")
    reply_cls = message_class(pool, "meshgate.test.v1.EchoReply")
    empty_cls = message_class(pool, "google.protobuf.Empty")

    async def fail_if_asked(request, context: grpc.aio.ServicerContext) -> None:  # type: ignore[no-untyped-def]
        if request.reply_headers:
            await context.send_initial_metadata(tuple(request.reply_headers.items()))
        if request.reply_trailers:
            context.set_trailing_metadata(tuple(request.reply_trailers.items()))
        if request.delay_seconds:
            await asyncio.sleep(request.delay_seconds)
        if request.fail_code:
            code = grpc.StatusCode(_code_tuple(request.fail_code))
            message = request.fail_message or f"failed with {code.name}"
            if request.fail_with_details:
                detail = any_pb2.Any()
                detail.Pack(
                    error_details_pb2.BadRequest(
                        field_violations=[
                            error_details_pb2.BadRequest.FieldViolation(
                                field="message", description="is not acceptable"
                            )
                        ]
                    )
                )
                status = status_pb2.Status(
                    code=request.fail_code, message=message, details=[detail]
                )
                context.set_trailing_metadata(
                    (
                        *tuple(request.reply_trailers.items()),
                        ("grpc-status-details-bin", status.SerializeToString()),
                    )
                )
            await context.abort(code, message)

    def reply_for(request, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
        reply = reply_cls(served_by=name)
        reply.request.CopyFrom(request)
        sans = (context.auth_context() or {}).get("x509_subject_alternative_name")
        if sans:
            reply.metadata["x-client-identity"] = ",".join(s.decode() for s in sans)
        if request.echo_metadata:
            for key, value in context.invocation_metadata() or ():
                text = value.hex() if isinstance(value, bytes) else value
                if key in reply.metadata:
                    reply.metadata[key] += "," + text
                else:
                    reply.metadata[key] = text
        return reply

    async def echo(request, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
        order = read_control(control)
        if order == "unavailable":
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{name} is unavailable")
        if order.startswith("slow:"):
            await asyncio.sleep(float(order.removeprefix("slow:")))
        await fail_if_asked(request, context)
        return reply_for(request, context)

    async def ping(request, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
        return empty_cls()

    async def server_stream(request, context: grpc.aio.ServicerContext) -> AsyncIterator[object]:  # type: ignore[no-untyped-def]
        count = max(1, len(request.tags)) if request.tags else 3
        for i in range(count):
            reply = reply_for(request, context)
            reply.request.message = f"{request.message}#{i}"
            yield reply
            if request.delay_seconds:
                await asyncio.sleep(request.delay_seconds)
        if request.fail_code:
            await context.abort(
                grpc.StatusCode(_code_tuple(request.fail_code)),
                request.fail_message or "stream failed",
            )

    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(
            echo,
            request_deserializer=request_cls.FromString,
            response_serializer=reply_cls.SerializeToString,
        ),
        "Ping": grpc.unary_unary_rpc_method_handler(
            ping,
            request_deserializer=empty_cls.FromString,
            response_serializer=empty_cls.SerializeToString,
        ),
        "ServerStream": grpc.unary_stream_rpc_method_handler(
            server_stream,
            request_deserializer=request_cls.FromString,
            response_serializer=reply_cls.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


def _code_tuple(code: int) -> tuple[int, str]:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.value  # type: ignore[no-any-return]
    raise ValueError(f"not a gRPC status code: {code}")


async def serve(
    port: int,
    name: str,
    host: str = "127.0.0.1",
    credentials: grpc.ServerCredentials | None = None,
    max_connection_age_ms: int | None = None,
    control: str | None = None,
) -> None:
    options = []
    if max_connection_age_ms:
        # GOAWAY after this age; calls in flight finish, clients reconnect.
        options += [
            ("grpc.max_connection_age_ms", max_connection_age_ms),
            ("grpc.max_connection_age_grace_ms", 30_000),
        ]
    server = grpc.aio.server(options=options)
    pool = load_pool(echo_descriptor_set())
    server.add_generic_rpc_handlers(
        (build_handler(pool, name, control), build_health_handler(control))
    )
    reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), server, pool=pool)
    await serve_until_signalled(server, f"{host}:{port}", credentials)


def server_credentials(cert: str, key: str, ca: str | None) -> grpc.ServerCredentials:
    with open(cert, "rb") as c, open(key, "rb") as k:
        pair = (k.read(), c.read())
    if ca is None:
        return grpc.ssl_server_credentials([pair])
    with open(ca, "rb") as f:
        roots = f.read()
    return grpc.ssl_server_credentials([pair], root_certificates=roots, require_client_auth=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="backend")
    parser.add_argument("--control", default=None, help="a file of orders, read per call")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls-ca", help="require client certificates from this CA")
    parser.add_argument("--max-connection-age-ms", type=int)
    args = parser.parse_args()
    credentials = (
        server_credentials(args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None
    )
    asyncio.run(
        serve(
            args.port,
            args.name,
            credentials=credentials,
            max_connection_age_ms=args.max_connection_age_ms,
            control=args.control,
        )
    )


if __name__ == "__main__":
    main()
