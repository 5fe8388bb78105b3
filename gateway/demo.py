"""``meshgate demo``: a demo gRPC backend plus the gateway on the demo config.

The backend is the Greeter of ``demo_files/greeter.proto``, served from that
same file compiled at start-up (no generated code) with server reflection,
so a newcomer can curl the gateway, or ``meshgate call`` the backend, a
second after ``make run``. Both files ship inside the package, so the demo
works from a plain ``pip install``.

The demo prints what to try only once the gateway answers, moves the backend
to a free port when 50051 is taken (grpcio would otherwise share the port
with whatever holds it, through SO_REUSEPORT, and half the calls would go
there), and stops quietly on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import yaml
from google.protobuf import message_factory

from gateway.descriptors import build_pool, compile_proto

DEMO_DIR = Path(__file__).resolve().parent / "demo_files"
DEMO_CONFIG = DEMO_DIR / "demo.yaml"
DEMO_PROTO = DEMO_DIR / "greeter.proto"
BACKEND_PORT = 50051
READY_TIMEOUT = 30.0
# Not SO_REUSEPORT: a backend left over on the same port must be an error, not a
# silent partner that answers half the calls.
_SERVER_OPTIONS = (("grpc.so_reuseport", 0),)


def try_lines(gateway: str, admin: str, backend: str) -> str:
    return f"""\
meshgate demo is up: the gateway on http://{gateway}, the demo backend on {backend}.
Try:

  curl -s -X POST http://{gateway}/demo.greeter.v1.Greeter/SayHello \\
       -H 'content-type: application/json' -d '{{"name": "world", "times": 2}}'

  curl -s http://{gateway}/v1/greet/world

  meshgate call {backend} demo.greeter.v1.Greeter/SayHello '{{"name": "world"}}'
  meshgate routes -c {DEMO_CONFIG} GET /v1/greet/world

  curl -s http://{admin}/ready
  curl -s http://{admin}/routes
  open http://{admin}/ in a browser: the status page

Ctrl-C stops both.
"""


async def serve_backend(port: int) -> None:
    from grpc_reflection.v1alpha import reflection

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
    server = grpc.aio.server(options=_SERVER_OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    reflection.enable_server_reflection(
        ("demo.greeter.v1.Greeter", reflection.SERVICE_NAME), server, pool
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"demo backend on 127.0.0.1:{port}", flush=True)
    # Stop on SIGTERM (from the demo) or Ctrl-C, letting grpc shut down in
    # its own loop: interrupting the loop instead leaves grpc's shutdown to
    # the garbage collector, which prints a traceback.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop(grace=1)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could have the port to itself (no SO_REUSEPORT sharing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def choose_backend_port(preferred: int = BACKEND_PORT) -> int:
    if port_is_free(preferred):
        return preferred
    port = free_port()
    print(
        f"port {preferred} is taken (another process listens there); "
        f"the demo backend uses {port} instead",
        flush=True,
    )
    return port


def demo_config(listen: str | None = None, admin: str | None = None) -> dict[str, Any]:
    """The shipped demo config, with the listener and admin addresses asked for."""
    config: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text())
    if listen:
        config["listeners"][0]["address"] = listen
    if admin:
        config["admin"]["address"] = admin
    return config


def write_config(directory: Path, config: dict[str, Any], backend_port: int) -> Path:
    """The demo config with the backend's port, and the proto found where it ships."""
    config = dict(config)
    config["descriptors"] = [{"proto": str(DEMO_PROTO), "include": [str(DEMO_DIR)]}]
    config["clusters"][0]["endpoints"] = [{"address": f"127.0.0.1:{backend_port}"}]
    path = directory / "demo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def wait_for_backend(port: int, backend: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        while time.monotonic() < deadline and backend.poll() is None:
            with contextlib.suppress(grpc.FutureTimeoutError):
                grpc.channel_ready_future(channel).result(timeout=0.5)
                return True
    return False


def announce_when_ready(admin: str, lines: str, stop: threading.Event) -> None:
    """Print ``lines`` once the admin listener says the gateway is ready."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{admin}/ready", timeout=1) as reply:
                if reply.status == 200:
                    print(lines, flush=True)
                    return
        except (urllib.error.URLError, OSError):
            pass
        stop.wait(0.1)


def run_demo(workers: int, listen: str | None = None, admin: str | None = None) -> int:
    from gateway.workers import serve

    port = choose_backend_port()
    # Its own session: the terminal's Ctrl-C goes to the gateway, which stops
    # the backend itself afterwards, so the backend prints no traceback.
    backend = subprocess.Popen(
        [sys.executable, "-m", "gateway.demo", "--port", str(port)], start_new_session=True
    )
    stop = threading.Event()
    try:
        if not wait_for_backend(port, backend):
            print("the demo backend did not start", file=sys.stderr)
            return 1
        config = demo_config(listen, admin)
        admin_address = config["admin"]["address"]
        lines = try_lines(config["listeners"][0]["address"], admin_address, f"127.0.0.1:{port}")
        threading.Thread(
            target=announce_when_ready, args=(admin_address, lines, stop), daemon=True
        ).start()
        with tempfile.TemporaryDirectory(prefix="meshgate-demo-") as tmp:
            return serve(write_config(Path(tmp), config, port), workers)
    except KeyboardInterrupt:
        return 130
    finally:
        stop.set()
        backend.terminate()
        try:
            backend.wait(timeout=5)
        except subprocess.TimeoutExpired:
            backend.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description="the demo gRPC backend")
    parser.add_argument("--port", type=int, default=BACKEND_PORT)
    args = parser.parse_args()
    asyncio.run(serve_backend(args.port))


if __name__ == "__main__":
    main()
