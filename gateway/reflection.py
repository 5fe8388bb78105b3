"""Descriptors from gRPC server reflection of a cluster's backends.

So that protos need not be shipped to the gateway: the services a backend
serves, and every file they need, are asked for once at load, and again when
a request names a service the gateway does not know yet (a backend deployed
after the gateway). A backend that cannot be reached at load is not a config
error; its services simply arrive later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

log = logging.getLogger(f"meshgate.{__name__}")

_SKIPPED_SERVICES = frozenset(
    {
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
        "grpc.health.v1.Health",
    }
)


class ReflectionError(Exception):
    pass


def fetch_descriptor_set(
    addresses: Iterable[str], timeout: float = 3.0
) -> descriptor_pb2.FileDescriptorSet:
    """Every file the services of the first reachable backend need."""
    errors: list[str] = []
    for address in addresses:
        try:
            return _fetch_one(address, timeout)
        except (grpc.RpcError, ReflectionError) as exc:
            errors.append(f"{address}: {_describe(exc)}")
    raise ReflectionError("no backend answered server reflection: " + "; ".join(errors))


def _fetch_one(address: str, timeout: float) -> descriptor_pb2.FileDescriptorSet:
    with grpc.insecure_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ReflectionError(f"not reachable within {timeout}s") from None
        database = ProtoReflectionDescriptorDatabase(channel)
        services = [s for s in database.get_services() if s not in _SKIPPED_SERVICES]
        files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

        def add(file: descriptor_pb2.FileDescriptorProto) -> None:
            if file.name in files:
                return
            files[file.name] = file
            for dependency in file.dependency:
                add(database.FindFileByName(dependency))

        for service in services:
            add(database.FindFileContainingSymbol(service))
    result = descriptor_pb2.FileDescriptorSet()
    result.file.extend(files.values())
    return result


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return f"{code}: {details}"
    return str(exc)
