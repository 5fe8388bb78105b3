"""JSON <-> protobuf for one message type, sans-IO.

orjson does the JSON text; protobuf's json_format does the proto3 JSON
mapping (lowerCamel or original names accepted on input, int64 as strings,
bytes as base64, well-known types in their string forms).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message

from gateway.errors import BadRequest
from gateway.transcode import json_text
from gateway.transcode.bytes_check import check_bytes_fields
from gateway.transcode.fast_json import Fallback, MessagePlan, PlanCompiler


@dataclass(frozen=True, slots=True)
class PrintOptions:
    """Response JSON options; the defaults are Envoy's."""

    preserve_proto_field_names: bool = False
    always_print_primitive_fields: bool = False
    enums_as_ints: bool = False


_NO_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "([^"]+)"')


class MessageCodec:
    __slots__ = ("_cls", "_ignore_unknown", "_options", "_plan", "_pool", "full_name")

    def __init__(
        self,
        cls: type[Message],
        pool: DescriptorPool,
        *,
        ignore_unknown_fields: bool = False,
        options: PrintOptions = PrintOptions(),
        compiler: PlanCompiler | None = None,
    ) -> None:
        self._cls = cls
        self._pool = pool
        self._ignore_unknown = ignore_unknown_fields
        self._options = options
        self.full_name = cls.DESCRIPTOR.full_name
        if compiler is None:
            compiler = PlanCompiler(
                pool,
                ignore_unknown=ignore_unknown_fields,
                proto_names=options.preserve_proto_field_names,
                print_defaults=options.always_print_primitive_fields,
                enums_as_ints=options.enums_as_ints,
            )
        # Well-known types at the top (Struct, Timestamp...) keep json_format.
        special = (
            self.full_name.startswith("google.protobuf.")
            and self.full_name != "google.protobuf.Empty"
        )
        self._plan: MessagePlan | None = None if special else compiler.plan(cls.DESCRIPTOR)

    def new(self) -> Message:
        return self._cls()

    def parse_json(self, body: bytes) -> Message:
        """A message from a JSON object; an empty body is the empty message."""
        message = self._cls()
        if not body.strip():
            return message
        self.merge_dict(message, json_text.loads(body))
        return message

    def merge_dict(self, message: Message, data: Any) -> None:
        if not isinstance(data, dict):
            raise BadRequest(f"expected a JSON object for {self.full_name}, got {_json_kind(data)}")
        if self._plan is not None:
            before = message.SerializeToString() if message.ListFields() else b""
            try:
                self._plan.parse_into(data, message)
                return
            except (Fallback, RecursionError):
                # Back to where we started; json_format decides, and words any error.
                message.Clear()
                message.MergeFromString(before)
        check_bytes_fields(data, message.DESCRIPTOR)
        try:
            json_format.ParseDict(
                data,
                message,
                ignore_unknown_fields=self._ignore_unknown,
                descriptor_pool=self._pool,
            )
        except json_format.ParseError as exc:
            raise BadRequest(_clean_parse_error(str(exc))) from None
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            # AttributeError: json_format on a non-string Any "@type" ({"@type": {}}).
            raise BadRequest(f"invalid {self.full_name}: {exc}") from None

    def parse_bytes(self, data: bytes) -> Message:
        return self._cls.FromString(data)

    def to_dict(self, message: Message) -> Any:
        if self._plan is not None:
            return self._plan.to_json(message)
        options = self._options
        return json_format.MessageToDict(
            message,
            always_print_fields_with_no_presence=options.always_print_primitive_fields,
            preserving_proto_field_name=options.preserve_proto_field_names,
            use_integers_for_enums=options.enums_as_ints,
            descriptor_pool=self._pool,
        )

    def render(self, message: Message) -> bytes:
        return orjson.dumps(self.to_dict(message))

    def wire_to_json(self) -> Callable[[bytes], bytes]:
        """``render(parse_bytes(data))`` with its lookups done once, for the
        messages of a stream."""
        from_string = self._cls.FromString
        dumps = orjson.dumps
        plan = self._plan
        if plan is None:
            render = self.render
            return lambda data: render(from_string(data))
        to_json = plan.to_json
        return lambda data: dumps(to_json(from_string(data)))


def _clean_parse_error(text: str) -> str:
    # json_format appends the list of every field of the message to an
    # unknown-field error; that is noise in an HTTP answer.
    first = text.split("\n", 1)[0].strip()
    if m := _NO_FIELD.search(first):
        return f"unknown field {m.group(2)!r} in {m.group(1)}"
    return first


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
