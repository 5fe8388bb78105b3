"""Protobuf messages as JSON Schemas: the proto3 JSON mapping, in process."""

from __future__ import annotations

from typing import Any

import jsonschema
from google.protobuf import (  # noqa: F401 (into the default pool)
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
    timestamp_pb2,
    wrappers_pb2,
)

from gateway.openapi.comments import comments_by_symbol
from gateway.openapi.schemas import REF_PREFIX, SchemaBuilder

F = descriptor_pb2.FieldDescriptorProto


def sample_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="sample.proto",
        package="s",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto"],
    )
    kind = file.enum_type.add(name="Kind")
    kind.value.add(name="KIND_UNSPECIFIED", number=0)
    kind.value.add(name="KIND_A", number=1)
    node = file.message_type.add(name="Node")
    entry = node.nested_type.add(name="TagsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    node.oneof_decl.add(name="choice")
    fields: list[tuple[str, int, Any]] = [
        ("big", F.TYPE_INT64, {}),
        ("small", F.TYPE_INT32, {}),
        ("data", F.TYPE_BYTES, {}),
        ("kind", F.TYPE_ENUM, {"type_name": ".s.Kind"}),
        ("child", F.TYPE_MESSAGE, {"type_name": ".s.Node"}),
        ("tags", F.TYPE_MESSAGE, {"type_name": ".s.Node.TagsEntry", "label": F.LABEL_REPEATED}),
        ("when", F.TYPE_MESSAGE, {"type_name": ".google.protobuf.Timestamp"}),
        ("maybe", F.TYPE_MESSAGE, {"type_name": ".google.protobuf.Int32Value"}),
        ("left", F.TYPE_STRING, {"oneof_index": 0}),
        ("right", F.TYPE_STRING, {"oneof_index": 0}),
        ("snake_case", F.TYPE_STRING, {}),
    ]
    for number, (name, type_, extra) in enumerate(fields, start=1):
        extra.setdefault("label", F.LABEL_OPTIONAL)
        node.field.add(name=name, number=number, type=type_, **extra)
    # A comment on the message and on field `big`, as protoc's source info has it.
    location = file.source_code_info.location.add(path=[4, 0], span=[0, 0, 0])
    location.leading_comments = " A node of a tree.\n"
    location = file.source_code_info.location.add(path=[4, 0, 2, 0], span=[0, 0, 0])
    location.leading_comments = " A big number.\n"
    return file


def build() -> tuple[SchemaBuilder, dict[str, Any], Any]:
    file = sample_file()
    pool = descriptor_pool.DescriptorPool()
    for dependency in file.dependency:
        proto = descriptor_pb2.FileDescriptorProto()
        descriptor_pool.Default().FindFileByName(dependency).CopyToProto(proto)
        pool.Add(proto)
    pool.Add(file)
    builder = SchemaBuilder(
        comments=comments_by_symbol([descriptor_pb2.FileDescriptorSet(file=[file])])
    )
    node = pool.FindMessageTypeByName("s.Node")
    builder.message_ref(node)
    return builder, builder.components, message_factory.GetMessageClass(node)


def validator(components: dict[str, Any]) -> jsonschema.Draft202012Validator:
    # The OpenAPI refs, rewritten to point into this standalone document.
    root = {"$defs": components, "$ref": "#/$defs/s.Node"}
    return jsonschema.Draft202012Validator(_rewrite(root))


def _rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (v.replace(REF_PREFIX, "#/$defs/") if k == "$ref" else _rewrite(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def test_scalars_enums_maps_and_well_known_types() -> None:
    _, components, _ = build()
    node = components["s.Node"]
    props = node["properties"]
    assert props["big"]["type"] == "string"
    assert props["big"]["description"] == "A big number."
    assert props["small"]["type"] == "integer"
    assert props["data"]["contentEncoding"] == "base64"
    assert props["kind"]["enum"] == ["KIND_UNSPECIFIED", "KIND_A"]
    assert props["child"] == {"$ref": REF_PREFIX + "s.Node"}  # recursion by reference
    assert props["tags"]["additionalProperties"]["type"] == "string"  # int64 values
    assert props["maybe"]["type"] == "integer"  # a wrapper is its scalar
    assert components["google.protobuf.Timestamp"]["format"] == "date-time"
    assert "snakeCase" in props  # lowerCamel, as the gateway prints
    assert node["description"] == "A node of a tree."
    assert {"not": {"required": ["left", "right"]}} in node["allOf"]


def test_what_the_gateway_prints_is_valid_against_the_schema() -> None:
    _, components, node_cls = build()
    message = node_cls()
    message.big = -(2**62)
    message.small = 7
    message.data = b"\x00\xff"
    message.kind = 1
    message.child.big = 1
    message.tags["a"] = 2**40
    message.when.seconds = 1_700_000_000
    message.maybe.value = 3
    message.left = "l"
    printed = json_format.MessageToDict(message)
    assert list(validator(components).iter_errors(printed)) == []


def test_a_oneof_with_both_fields_set_is_invalid() -> None:
    _, components, _ = build()
    assert list(validator(components).iter_errors({"left": "a", "right": "b"}))
    assert list(validator(components).iter_errors({"big": 5}))  # int64 must be a string


def test_proto_field_names_when_preserved() -> None:
    _, _, node_cls = build()
    builder = SchemaBuilder(proto_names=True)
    builder.message_ref(node_cls.DESCRIPTOR)
    assert "snake_case" in builder.components["s.Node"]["properties"]
