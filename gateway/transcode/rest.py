"""REST requests to protobuf messages, by ``google.api.http`` bindings (sans-IO).

A matched binding gives three sources for the request message. The router
applies them in Envoy's order, later ones winning: path variables, the HTTP
body (``body: "*"`` or a field), query parameters. Values from the path and
query are strings; they are converted to the proto3 JSON form of the field
they name and parsed by protobuf's own JSON parser, so every well-known type
accepts exactly its JSON string form (``?when=2024-01-01T00:00:00Z``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.errors import BadRequest
from gateway.transcode import json_text
from gateway.transcode.bytes_check import check_bytes_fields
from gateway.transcode.json_codec import MessageCodec
from gateway.transcode.path_matcher import VariableBinding

HTTP_BODY = "google.api.HttpBody"

# Message types whose proto3 JSON form is a string or a number, so a query
# parameter can carry them.
_SCALAR_MESSAGES = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    }
)
_TRUE = frozenset({"true", "True", "1"})
_FALSE = frozenset({"false", "False", "0"})


@dataclass(frozen=True, slots=True)
class QueryOptions:
    ignore_unknown: bool = False
    ignored: frozenset[str] = frozenset()


def body_into(
    codec: MessageCodec, message: Message, body_path: str, body: bytes, content_type: str
) -> None:
    """Merge the HTTP body into ``message`` at ``body_path`` ("*" = the whole message)."""
    if not body_path:
        return
    if body_path == "*":
        if message.DESCRIPTOR.full_name == HTTP_BODY:
            _fill_http_body(message, body, content_type)
            return
        if body.strip():
            codec.merge_dict(message, _load_json(body))
        return
    target, field = _resolve_body_field(message, body_path)
    if field.message_type is not None and field.message_type.full_name == HTTP_BODY:
        _fill_http_body(getattr(target, field.name), body, content_type)
        return
    if not body.strip():
        return
    codec.merge_dict(message, _nest(body_path.split("."), _load_json(body)))


def bindings_into(
    codec: MessageCodec,
    message: Message,
    bindings: Iterable[VariableBinding],
    options: QueryOptions,
    path_variable_count: int,
) -> None:
    """Set path variables and query parameters on ``message``."""
    data: dict[str, Any] = {}
    for index, binding in enumerate(bindings):
        from_path = index < path_variable_count
        name = ".".join(binding.field_path)
        if not from_path and name in options.ignored:
            continue
        try:
            _place(data, message.DESCRIPTOR, binding.field_path, binding.value)
        except _UnknownField:
            if from_path or not options.ignore_unknown:
                what = "path variable" if from_path else "query parameter"
                raise BadRequest(
                    f"{what} {name!r} does not name a field of {message.DESCRIPTOR.full_name}"
                ) from None
    if data:
        check_bytes_fields(data, message.DESCRIPTOR)
        codec.merge_dict(message, data)


def rest_request(
    codec: MessageCodec,
    bindings: Sequence[VariableBinding],
    path_variables: int,
    body_path: str,
    body: bytes,
    content_type: str,
    options: QueryOptions,
) -> Message:
    """A REST request's message, with Envoy's precedence: the body beats path
    variables, and query parameters beat both.

    ``bindings`` are the path variables (the first ``path_variables``) followed
    by the query parameters, as the path matcher returns them.
    """
    message = codec.new()
    bindings_into(codec, message, bindings[:path_variables], options, path_variables)
    body_into(codec, message, body_path, body, content_type)
    bindings_into(codec, message, bindings[path_variables:], options, 0)
    return message


class _UnknownField(Exception):
    pass


def _place(data: dict[str, Any], descriptor: Descriptor, path: tuple[str, ...], value: str) -> None:
    node = data
    for depth, part in enumerate(path):
        name, key = _split_map_key(part)
        field = descriptor.fields_by_name.get(name)
        if field is None:
            field = descriptor.fields_by_camelcase_name.get(name)
        if field is None:
            raise _UnknownField(part)
        last = depth == len(path) - 1
        if key is not None:
            if not _is_map(field) or not last:
                raise _UnknownField(part)
            value_field = field.message_type.fields_by_name["value"]
            node.setdefault(field.name, {})[key] = _json_value(value_field, value, part)
            return
        if last:
            converted = _json_value(field, value, part)
            if (
                field.message_type is not None
                and field.message_type.full_name == "google.protobuf.FieldMask"
                and isinstance(node.get(field.name), str)
            ):
                # ?update_mask=a&update_mask=b is the mask "a,b".
                node[field.name] = f"{node[field.name]},{converted}"
            elif field.is_repeated and not _is_map(field):
                existing = node.setdefault(field.name, [])
                if isinstance(existing, list):
                    existing.append(converted)
            else:
                node[field.name] = converted
            return
        if field.message_type is None or field.is_repeated:
            raise _UnknownField(part)
        child = node.setdefault(field.name, {})
        if not isinstance(child, dict):
            raise _UnknownField(part)
        node = child
        descriptor = field.message_type


def _split_map_key(part: str) -> tuple[str, str | None]:
    # grpc-gateway's map syntax: ?labels[color]=red
    if part.endswith("]") and "[" in part:
        name, _, key = part[:-1].partition("[")
        return name, key
    return part, None


def _json_value(field: FieldDescriptor, text: str, name: str) -> Any:
    if field.type == FieldDescriptor.TYPE_BOOL:
        return _bool(text, name)
    if field.message_type is not None:
        full_name = field.message_type.full_name
        if full_name == "google.protobuf.BoolValue":
            return _bool(text, name)
        if full_name in _SCALAR_MESSAGES:
            return text
        raise BadRequest(f"{name!r} is a message field and cannot take a single value")
    if field.type == FieldDescriptor.TYPE_STRING and any("\udc80" <= ch <= "\udcff" for ch in text):
        # Undecodable percent-escapes survive as lone surrogates; a string
        # field must be valid UTF-8.
        raise BadRequest(f"{name!r} is not valid UTF-8")
    if field.type == FieldDescriptor.TYPE_BYTES:
        # Path and query bytes are base64 in the URL-safe alphabet (or not).
        return text.replace("-", "+").replace("_", "/")
    return text


def _bool(text: str, name: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequest(f"{name!r} takes true or false, not {text!r}")


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _resolve_body_field(message: Message, path: str) -> tuple[Message, FieldDescriptor]:
    target = message
    parts = path.split(".")
    for part in parts[:-1]:
        target = getattr(target, part)
    return target, target.DESCRIPTOR.fields_by_name[parts[-1]]


def _fill_http_body(http_body: Message, body: bytes, content_type: str) -> None:
    http_body.content_type = content_type
    http_body.data = body


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    for part in reversed(path):
        value = {part: value}
    assert isinstance(value, dict)
    return value


def _load_json(body: bytes) -> Any:
    return json_text.loads(body)


def response_payload(
    codec: MessageCodec, message: Message, response_body: str
) -> tuple[str, bytes]:
    """(content type, body) for a reply; HttpBody replies are sent as raw bytes."""
    target: Any = message
    if response_body:
        for part in response_body.split("."):
            target = getattr(target, part)
    if isinstance(target, Message) and target.DESCRIPTOR.full_name == HTTP_BODY:
        content_type = target.content_type or "application/octet-stream"
        return content_type, bytes(target.data)
    if not response_body:
        return "application/json", codec.render(message)
    return "application/json", orjson.dumps(_field_json(codec, message, response_body))


def _field_json(codec: MessageCodec, message: Message, path: str) -> Any:
    data: Any = codec.to_dict(message)
    descriptor = message.DESCRIPTOR
    for part in path.split("."):
        field = descriptor.fields_by_name[part]
        value = None
        if isinstance(data, dict):
            value = data.get(field.json_name, data.get(field.name))
        if value is None:
            return _default_json(field)
        data = value
        if field.message_type is not None:
            descriptor = field.message_type
    return data


def _default_json(field: FieldDescriptor) -> Any:
    if field.is_repeated:
        return {} if _is_map(field) else []
    if field.message_type is not None:
        return {}
    if field.type == FieldDescriptor.TYPE_BOOL:
        return False
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return ""
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[0].name
    if field.type in (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    ):
        return "0"
    return 0
