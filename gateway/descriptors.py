"""Protobuf schemas: FileDescriptorSets and .proto files compiled at load.

Everything lands in one private DescriptorPool per config snapshot, so two
snapshots with different versions of the same proto never mix. Imports the
sets leave out (a set built without --include_imports) are filled from the
well-known types and googleapis protos that ship with protobuf and
googleapis-common-protos.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import google.api
import grpc_tools
from google.api import annotations_pb2, http_pb2, httpbody_pb2  # noqa: F401 (registers)
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.rpc import error_details_pb2, status_pb2  # noqa: F401 (registers)

WELL_KNOWN_INCLUDE = Path(grpc_tools.__file__).parent / "_proto"
GOOGLEAPIS_INCLUDE = Path(next(iter(google.api.__path__))).parent.parent


class DescriptorError(Exception):
    """A schema source cannot be read, compiled or linked."""


def read_descriptor_set(path: Path) -> descriptor_pb2.FileDescriptorSet:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DescriptorError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return descriptor_pb2.FileDescriptorSet.FromString(data)
    except Exception as exc:  # protobuf raises DecodeError or RuntimeError by backend
        raise DescriptorError(f"{path} is not a FileDescriptorSet: {exc}") from None


def compile_proto(proto: Path, include: Sequence[Path]) -> descriptor_pb2.FileDescriptorSet:
    """Compile one .proto with grpcio-tools' protoc, imports included.

    protoc runs as a child process so its diagnostics can be captured for the
    error message instead of going to the gateway's stderr.
    """
    roots = [*include] if include else [proto.parent]
    relative = _relative_to_any(proto, roots)
    with tempfile.TemporaryDirectory(prefix="meshgate-protoc-") as tmp:
        out = Path(tmp) / "set.pb"
        args = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"-I{r}" for r in roots),
            f"-I{WELL_KNOWN_INCLUDE}",
            f"-I{GOOGLEAPIS_INCLUDE}",
            "--include_imports",
            # Comments, for the descriptions of the generated OpenAPI document.
            "--include_source_info",
            f"--descriptor_set_out={out}",
            str(relative),
        ]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            message = result.stderr.strip() or f"exit {result.returncode}"
            raise DescriptorError(f"protoc failed on {proto}: {message}")
        return read_descriptor_set(out)


def _relative_to_any(proto: Path, roots: Sequence[Path]) -> Path:
    for root in roots:
        try:
            return proto.resolve().relative_to(root.resolve())
        except ValueError:
            continue
    raise DescriptorError(f"{proto} is not under any include directory {[str(r) for r in roots]}")


def build_pool(sets: Iterable[descriptor_pb2.FileDescriptorSet]) -> descriptor_pool.DescriptorPool:
    """One pool from several sets; the same file twice is added once."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for fds in sets:
        for file in fds.file:
            if file.name in files and files[file.name] != file:
                # Copies of the well-known and googleapis protos differ only in
                # options and source info between toolchains; keep the first.
                if file.name.startswith("google/"):
                    continue
                raise DescriptorError(f"{file.name} is given twice with different contents")
            files[file.name] = file
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        file = files.get(name) or _bundled_file(name)
        for dependency in file.dependency:
            add(dependency)
        try:
            pool.Add(file)
        except Exception as exc:
            raise DescriptorError(f"cannot link {name}: {exc}") from None
        added.add(name)

    for name in files:
        add(name)
    return pool


def _bundled_file(name: str) -> descriptor_pb2.FileDescriptorProto:
    try:
        descriptor = descriptor_pool.Default().FindFileByName(name)
    except KeyError:
        raise DescriptorError(f"import {name!r} is missing from the descriptor sets") from None
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor.CopyToProto(proto)
    return proto


def all_services(
    pool: descriptor_pool.DescriptorPool, sets: Iterable[descriptor_pb2.FileDescriptorSet]
) -> list[ServiceDescriptor]:
    """Services declared in the given sets (not those of bundled imports)."""
    names: list[str] = []
    for fds in sets:
        for file in fds.file:
            prefix = f"{file.package}." if file.package else ""
            names.extend(prefix + s.name for s in file.service)
    return [pool.FindServiceByName(n) for n in dict.fromkeys(names)]


def method_path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"
