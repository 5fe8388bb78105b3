"""The Apache Dubbo Python SDK peer: meshgate.interop.v1.Greeter over Triple.

Run with the interpreter of the dubbo-python venv that tests/support/peers.py creates, from the
repository root, with the generated greeter_pb2 module on PYTHONPATH (peers.py arranges both):

    python -m tests.peers.python_dubbo.server --port N

The SDK (apache-dubbo 3.0.0b1) has no groups or versions on the provider side, so this peer
serves one Greeter and names itself "python" in served_by.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import dubbo
from dubbo.configs import ServiceConfig
from dubbo.proxy.handlers import RpcMethodHandler, RpcServiceHandler

import greeter_pb2  # generated at test time by tests/support/peers.py

SERVICE_NAME = "meshgate.interop.v1.Greeter"
SERVED_BY = "python"


class BusinessError(Exception):
    """What Fail raises; the SDK turns every handler exception into INTERNAL."""


def _reply(message: str) -> greeter_pb2.HelloReply:
    return greeter_pb2.HelloReply(message=message, served_by=SERVED_BY)


def say_hello(request: greeter_pb2.HelloRequest) -> greeter_pb2.HelloReply:
    return _reply(f"hello {request.name}")


def fail(request: greeter_pb2.HelloRequest) -> greeter_pb2.HelloReply:
    raise BusinessError(f"greeter business failure for {request.name}")


def slow(request: greeter_pb2.SlowRequest) -> greeter_pb2.HelloReply:
    time.sleep(request.millis / 1000)
    return _reply(f"slept {request.millis}ms")


def say_hello_stream(stream: Any) -> Iterator[greeter_pb2.HelloReply]:
    request = stream.read()
    for index in range(1, 4):
        yield _reply(f"hello {request.name} #{index}")


def _unary(func: Any, name: str, request_type: Any) -> RpcMethodHandler:
    return RpcMethodHandler.unary(
        func,
        method_name=name,
        request_deserializer=request_type.FromString,
        response_serializer=greeter_pb2.HelloReply.SerializeToString,
    )


def service_handler() -> RpcServiceHandler:
    return RpcServiceHandler(
        service_name=SERVICE_NAME,
        method_handlers=[
            _unary(say_hello, "SayHello", greeter_pb2.HelloRequest),
            _unary(fail, "Fail", greeter_pb2.HelloRequest),
            _unary(slow, "Slow", greeter_pb2.SlowRequest),
            RpcMethodHandler.server_stream(
                say_hello_stream,
                method_name="SayHelloStream",
                request_deserializer=greeter_pb2.HelloRequest.FromString,
                response_serializer=greeter_pb2.HelloReply.SerializeToString,
            ),
        ],
    )


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    config = ServiceConfig(service_handler(), host="127.0.0.1", port=args.port)
    dubbo.Server(config).start()
    _wait_for_port(args.port)
    print("READY", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
