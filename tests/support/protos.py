"""Compile the tests' own .proto files with protoc (grpcio-tools).

The tests build their descriptor sets with protoc directly rather than through
meshgate's loader, so the loader is checked against an independent compile.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import google.api
import grpc_tools
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent.parent / "protos"
ECHO_PROTO = "meshgate/test/v1/echo.proto"

_WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"
_GOOGLEAPIS = Path(next(iter(google.api.__path__))).parent.parent


def compile_descriptor_set(proto: str, out: Path, root: Path = PROTO_ROOT) -> Path:
    args = [
        "protoc",
        f"-I{root}",
        f"-I{_WELL_KNOWN}",
        f"-I{_GOOGLEAPIS}",
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        proto,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {proto}")
    return out


@functools.cache
def echo_descriptor_set() -> Path:
    """The echo service's FileDescriptorSet, compiled once per test session."""
    out = Path(tempfile.mkdtemp(prefix="meshgate-protos-")) / "echo.pb"
    return compile_descriptor_set(ECHO_PROTO, out)


def load_pool(descriptor_set: Path) -> descriptor_pool.DescriptorPool:
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    return pool


def message_class(pool: descriptor_pool.DescriptorPool, full_name: str) -> type[Message]:
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))
