"""Backends and a reference xDS client for the istiod tests.

Two roles, each run as its own process::

    python -m tests.istio.probe serve --gen-dir DIR --port 50061 --name v1
    python -m tests.istio.probe client --gen-dir DIR --target xds:///shop...:50051

``serve`` is a plain grpcio server of the Probe service (tests/istio/probe.proto)
that answers with its own name. ``client`` uses grpcio's built-in proxyless xDS
client: it must run in its own process because grpcio reads GRPC_XDS_BOOTSTRAP
from the environment when the first xds:/// channel is created. The client reads
one JSON command per line on stdin and answers with one JSON line on stdout, so
a test can keep one channel (and one xDS stream) open across a config edit.

``DIR`` holds probe_pb2.py / probe_pb2_grpc.py made by :func:`compile_probe`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections import Counter
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

PROTO = Path(__file__).resolve().parent / "probe.proto"
READY_MARKER = "PROBE READY"


def compile_probe(out_dir: Path) -> Path:
    """Generate the Python modules of probe.proto into ``out_dir``."""
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO.parent}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        PROTO.name,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    return out_dir


def _load_generated(gen_dir: str) -> tuple[ModuleType, ModuleType]:
    sys.path.insert(0, gen_dir)
    return importlib.import_module("probe_pb2"), importlib.import_module("probe_pb2_grpc")


def serve(gen_dir: str, port: int, name: str) -> None:
    pb2, pb2_grpc = _load_generated(gen_dir)

    class Probe(pb2_grpc.ProbeServicer):  # type: ignore[name-defined,misc]
        def Whoami(self, request: Any, context: grpc.ServicerContext) -> Any:
            return pb2.WhoamiReply(backend=name)

        def Slow(self, request: Any, context: grpc.ServicerContext) -> Any:
            # Sleep in slices so a cancelled call frees its worker thread early.
            deadline = time.monotonic() + request.seconds
            while time.monotonic() < deadline and context.is_active():
                time.sleep(0.05)
            return pb2.WhoamiReply(backend=name)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    pb2_grpc.add_ProbeServicer_to_server(Probe(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"{READY_MARKER} {name} 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


class ReferenceClient:
    """Runs the commands of the test against one xds:/// channel."""

    def __init__(self, gen_dir: str, target: str) -> None:
        self.pb2, pb2_grpc = _load_generated(gen_dir)
        self.channel = grpc.insecure_channel(target)
        self.stub = pb2_grpc.ProbeStub(self.channel)

    def whoami(self, count: int, metadata: list[list[str]], timeout: float) -> dict[str, Any]:
        """Send ``count`` unary calls; count answers by backend and failures by code."""
        backends: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        pairs = tuple((key, value) for key, value in metadata)
        for _ in range(count):
            try:
                reply = self.stub.Whoami(self.pb2.WhoamiRequest(), metadata=pairs, timeout=timeout)
                backends[reply.backend] += 1
            except grpc.RpcError as error:
                errors[error.code().name] += 1
        return {"backends": dict(backends), "errors": dict(errors)}

    def slow(self, seconds: float, timeout: float, metadata: list[list[str]]) -> dict[str, Any]:
        """One call to the slow method; report its status code and duration."""
        started = time.monotonic()
        pairs = tuple((key, value) for key, value in metadata)
        try:
            reply = self.stub.Slow(
                self.pb2.SlowRequest(seconds=seconds), metadata=pairs, timeout=timeout
            )
            code, backend = "OK", reply.backend
        except grpc.RpcError as error:
            code, backend = error.code().name, ""
        return {"code": code, "backend": backend, "elapsed": time.monotonic() - started}

    def run(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command["op"]
        metadata = command.get("metadata", [])
        if op == "whoami":
            return self.whoami(int(command["count"]), metadata, float(command.get("timeout", 10)))
        if op == "slow":
            return self.slow(float(command["seconds"]), float(command["timeout"]), metadata)
        raise ValueError(f"unknown op {op!r}")


def client(gen_dir: str, target: str) -> None:
    reference = ReferenceClient(gen_dir, target)
    print(READY_MARKER, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = reference.run(json.loads(line))
        except Exception as error:  # reported to the test as data, not swallowed
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    roles = parser.add_subparsers(dest="role", required=True)
    serve_args = roles.add_parser("serve")
    serve_args.add_argument("--gen-dir", required=True)
    serve_args.add_argument("--port", type=int, required=True)
    serve_args.add_argument("--name", required=True)
    client_args = roles.add_parser("client")
    client_args.add_argument("--gen-dir", required=True)
    client_args.add_argument("--target", required=True)
    args = parser.parse_args()
    if args.role == "serve":
        serve(args.gen_dir, args.port, args.name)
    else:
        client(args.gen_dir, args.target)


if __name__ == "__main__":
    main()
