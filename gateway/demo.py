"""``meshgate demo``: a demo gRPC backend plus the gateway on config/demo.yaml.

The backend is the Greeter of config/demo/greeter.proto, served from that
same file compiled at start-up (no generated code), so a newcomer can curl
the gateway a second after ``make run``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

import grpc
import grpc.aio
from google.protobuf import message_factory

from gateway.descriptors import build_pool, compile_proto

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DEMO_CONFIG = CONFIG_DIR / "demo.yaml"
DEMO_PROTO = CONFIG_DIR / "demo" / "greeter.proto"
BACKEND_PORT = 50051

CURL_LINES = """\
meshgate demo is up. Try:

  curl -s -X POST http://127.0.0.1:8080/demo.greeter.v1.Greeter/SayHello \\
       -H 'content-type: application/json' -d '{"name": "world", "times": 2}'

  curl -s http://127.0.0.1:8080/v1/greet/world

  curl -s http://127.0.0.1:9901/ready
  curl -s http://127.0.0.1:9901/config_dump
"""


async def serve_backend(port: int) -> None:
    pool = build_pool([compile_proto(DEMO_PROTO, [DEMO_PROTO.parent])])
    request_cls = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("demo.greeter.v1.HelloRequest")
    )
    reply_cls = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("demo.greeter.v1.HelloReply")
    )

    async def say_hello(request, context):  # type: ignore[no-untyped-def]
        if not request.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is required")
        greeting = f"Hello, {request.name}!"
        return reply_cls(
            message=greeting,
            messages=[greeting] * max(request.times, 0),
            served_by=f"demo-backend:{port}",
        )

    handler = grpc.method_handlers_generic_handler(
        "demo.greeter.v1.Greeter",
        {
            "SayHello": grpc.unary_unary_rpc_method_handler(
                say_hello,
                request_deserializer=request_cls.FromString,
                response_serializer=reply_cls.SerializeToString,
            ),
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"demo backend on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


def run_demo(workers: int) -> int:
    from gateway.workers import serve

    backend = subprocess.Popen([sys.executable, "-m", "gateway.demo", "--port", str(BACKEND_PORT)])
    try:
        print(CURL_LINES, flush=True)
        return serve(DEMO_CONFIG, workers)
    finally:
        backend.terminate()
        backend.wait(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description="the demo gRPC backend")
    parser.add_argument("--port", type=int, default=BACKEND_PORT)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_backend(args.port))


if __name__ == "__main__":
    main()
