"""Protobuf messages as JSON Schemas, by the proto3 JSON mapping the gateway speaks.

Sans-IO: descriptors in, plain dicts out. Each message becomes one entry of
``components.schemas`` (named by its full name) and fields refer to it, so
recursive messages terminate. The mapping is protobuf's canonical one, as
:mod:`gateway.transcode.json_codec` applies it: 64-bit integers are strings,
bytes are base64, enums are their names, maps are objects, and the
well-known types take their string or value forms (Timestamp as RFC 3339,
Duration as ``"1.5s"``, Struct as any object, wrappers as their scalar).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

Schema = dict[str, Any]
REF_PREFIX = "#/components/schemas/"
HTTP_BODY = "google.api.HttpBody"

_INT64 = {"type": "string", "pattern": r"^-?[0-9]+$"}
_UINT64 = {"type": "string", "pattern": r"^[0-9]+$"}
_SCALARS: dict[int, Schema] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_INT64: {**_INT64, "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {**_INT64, "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {**_INT64, "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {**_UINT64, "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {**_UINT64, "format": "uint64"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}

_WRAPPERS = {
    "google.protobuf.DoubleValue": FieldDescriptor.TYPE_DOUBLE,
    "google.protobuf.FloatValue": FieldDescriptor.TYPE_FLOAT,
    "google.protobuf.Int64Value": FieldDescriptor.TYPE_INT64,
    "google.protobuf.UInt64Value": FieldDescriptor.TYPE_UINT64,
    "google.protobuf.Int32Value": FieldDescriptor.TYPE_INT32,
    "google.protobuf.UInt32Value": FieldDescriptor.TYPE_UINT32,
    "google.protobuf.BoolValue": FieldDescriptor.TYPE_BOOL,
    "google.protobuf.StringValue": FieldDescriptor.TYPE_STRING,
    "google.protobuf.BytesValue": FieldDescriptor.TYPE_BYTES,
}
# Well-known types with a JSON form of their own (not an object of their fields).
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 time, e.g. 2026-01-02T15:04:05Z.",
    },
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
        "description": "Seconds with an s suffix, e.g. 1.5s.",
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths in lowerCamelCase.",
    },
    "google.protobuf.Struct": {"type": "object", "description": "Any JSON object."},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "description": "Any JSON array."},
    "google.protobuf.Empty": {"type": "object", "properties": {}, "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string", "description": "The type URL."}},
        "required": ["@type"],
        "description": "A message of the type @type names, with its fields beside @type.",
    },
}
STATUS_SCHEMA: Schema = {
    "type": "object",
    "description": "google.rpc.Status: every error the gateway answers with.",
    "properties": {
        "code": {"type": "integer", "description": "The gRPC status code."},
        "message": {"type": "string", "description": "What went wrong."},
        "details": {
            "type": "array",
            "items": {"$ref": REF_PREFIX + "google.protobuf.Any"},
            "description": "google.rpc error details (BadRequest, ErrorInfo...).",
        },
    },
    "required": ["code", "message"],
}


@dataclass
class SchemaBuilder:
    """Collects ``components.schemas`` while fields and operations ask for messages."""

    comments: Mapping[str, str] = field(default_factory=dict)
    """Proto comments by full name (``pkg.Message``, ``pkg.Message.field``)."""
    proto_names: bool = False
    """Field names as in the .proto (preserve_proto_field_names) rather than lowerCamel."""
    components: dict[str, Schema] = field(default_factory=dict)

    def message_ref(self, message: Descriptor) -> Schema:
        name = message.full_name
        if name not in self.components:
            self.components[name] = {}  # a placeholder first: messages may recurse
            self.components[name] = self._message(message)
        return {"$ref": REF_PREFIX + name}

    def field_name(self, descriptor: FieldDescriptor) -> str:
        name: str = descriptor.name if self.proto_names else descriptor.json_name
        return name

    def field_schema(self, descriptor: FieldDescriptor) -> Schema:
        """A field's schema, repeated and map fields included."""
        if _is_map(descriptor):
            value = descriptor.message_type.fields_by_name["value"]
            schema: Schema = {"type": "object", "additionalProperties": self.value_schema(value)}
        elif descriptor.is_repeated:
            schema = {"type": "array", "items": self.value_schema(descriptor)}
        else:
            schema = self.value_schema(descriptor)
        comment = self.comments.get(descriptor.full_name)
        if comment:
            schema = {**schema, "description": comment} if "$ref" not in schema else schema
        return schema

    def value_schema(self, descriptor: FieldDescriptor) -> Schema:
        """One value of the field (an element, for repeated fields)."""
        if descriptor.type == FieldDescriptor.TYPE_ENUM:
            return self.enum_schema(descriptor.enum_type)
        if descriptor.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            return self.message_schema(descriptor.message_type)
        return dict(_SCALARS[descriptor.type])

    def message_schema(self, message: Descriptor) -> Schema:
        name = message.full_name
        if name in _WRAPPERS:
            return dict(_SCALARS[_WRAPPERS[name]])
        if name == "google.protobuf.NullValue":
            return {"type": "null"}
        return self.message_ref(message)

    def enum_schema(self, enum: EnumDescriptor) -> Schema:
        if enum.full_name == "google.protobuf.NullValue":
            return {"type": "null"}
        schema: Schema = {"type": "string", "enum": [v.name for v in enum.values]}
        comment = self.comments.get(enum.full_name)
        if comment:
            schema["description"] = comment
        return schema

    def _message(self, message: Descriptor) -> Schema:
        well_known = _WELL_KNOWN.get(message.full_name)
        if well_known is not None:
            return dict(well_known)
        properties = {self.field_name(f): self.field_schema(f) for f in message.fields}
        schema: Schema = {"type": "object", "properties": properties}
        comment = self.comments.get(message.full_name)
        if comment:
            schema["description"] = comment
        exclusive = [
            [self.field_name(f) for f in oneof.fields]
            for oneof in message.oneofs
            if len(oneof.fields) > 1 and not _is_synthetic(oneof)
        ]
        if exclusive:
            # A oneof: at most one of its fields is set, so no two may appear together.
            schema["allOf"] = [
                {"not": {"required": [a, b]}}
                for names in exclusive
                for i, a in enumerate(names)
                for b in names[i + 1 :]
            ]
        return schema


def _is_map(descriptor: FieldDescriptor) -> bool:
    message = descriptor.message_type
    return descriptor.is_repeated and message is not None and message.GetOptions().map_entry


def _is_synthetic(oneof: Any) -> bool:
    """proto3 ``optional`` makes a one-field oneof that is no choice at all."""
    return len(oneof.fields) == 1 and oneof.fields[0].has_presence
