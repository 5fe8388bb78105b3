"""Proto comments by symbol, from a FileDescriptorSet's source info.

protoc keeps comments only with ``--include_source_info`` (the gateway's
own protoc runs pass it); a set without source info simply has no comments.
A location's path walks the FileDescriptorProto by field numbers: 4 is a
file's ``message_type``, 2 a message's ``field``, 3 a nested message, 5 an
enum, 6 a file's ``service`` and 2 a service's ``method``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from google.protobuf import descriptor_pb2

_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_SERVICE_METHOD = 2


def comments_by_symbol(sets: Iterable[descriptor_pb2.FileDescriptorSet]) -> dict[str, str]:
    found: dict[str, str] = {}
    for fds in sets:
        for file in fds.file:
            names = _symbols(file)
            for location in file.source_code_info.location:
                name = names.get(tuple(location.path))
                text = _clean(location.leading_comments or location.trailing_comments)
                if name and text:
                    found.setdefault(name, text)
    return found


def _symbols(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Location path -> full name, for every message, field, enum, service and method."""
    prefix = f"{file.package}." if file.package else ""
    names: dict[tuple[int, ...], str] = {}
    for i, message in enumerate(file.message_type):
        _message(message, (_FILE_MESSAGE, i), prefix + message.name, names)
    for i, enum in enumerate(file.enum_type):
        names[(_FILE_ENUM, i)] = prefix + enum.name
    for i, service in enumerate(file.service):
        service_name = prefix + service.name
        names[(_FILE_SERVICE, i)] = service_name
        for j, method in enumerate(service.method):
            names[(_FILE_SERVICE, i, _SERVICE_METHOD, j)] = f"{service_name}.{method.name}"
    return names


def _message(
    message: descriptor_pb2.DescriptorProto,
    path: tuple[int, ...],
    name: str,
    names: dict[tuple[int, ...], str],
) -> None:
    names[path] = name
    for i, field in enumerate(message.field):
        names[(*path, _MESSAGE_FIELD, i)] = f"{name}.{field.name}"
    for i, nested in enumerate(message.nested_type):
        _message(nested, (*path, _MESSAGE_NESTED, i), f"{name}.{nested.name}", names)
    for i, enum in enumerate(message.enum_type):
        names[(*path, _MESSAGE_ENUM, i)] = f"{name}.{enum.name}"


def _clean(text: str) -> str:
    lines: Sequence[str] = [line.strip() for line in text.strip().splitlines()]
    return " ".join(line for line in lines if line)
