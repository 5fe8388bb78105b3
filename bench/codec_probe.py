"""How much of a request is JSON <-> protobuf, and how much a compiled codec would save.

``json_format`` walks descriptors in pure Python for every field of every
request. The probe below compiles one converter per message type once (the
"compile on load" principle of DESIGN.md) and times both on the benchmark's
payloads. It is a measurement prototype, not a codec: it covers the field
kinds the echo schema uses and checks its output against json_format's.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from bench.payloads import REQUEST_TYPE, build_payloads
from tests.support.protos import echo_descriptor_set, load_pool, message_class

Setter = Callable[[Message, Any], None]
Getter = Callable[[Any], Any]
INT64_KINDS = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
JSON_STRING_WKT = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
}


def _scalar_in(field: FieldDescriptor) -> Callable[[Any], Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_ENUM:
        by_name = {v.name: v.number for v in field.enum_type.values}
        return lambda value: by_name[value] if isinstance(value, str) else int(value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return base64.b64decode
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return float
    if kind == FieldDescriptor.TYPE_STRING or kind == FieldDescriptor.TYPE_BOOL:
        return lambda value: value
    return int


def _scalar_out(field: FieldDescriptor) -> Getter:
    kind = field.type
    if kind == FieldDescriptor.TYPE_ENUM:
        by_number = {v.number: v.name for v in field.enum_type.values}
        return lambda value: by_number.get(value, value)
    if kind == FieldDescriptor.TYPE_BYTES:
        return lambda value: base64.b64encode(value).decode()
    if kind in INT64_KINDS:
        return str
    return lambda value: value


class CompiledCodec:
    """Per-message-type converters, built once and cached by full name."""

    def __init__(self) -> None:
        self._parsers: dict[str, Callable[[Message, dict[str, Any]], None]] = {}
        self._printers: dict[str, Callable[[Message], dict[str, Any]]] = {}

    def parser(self, descriptor: Descriptor) -> Callable[[Message, dict[str, Any]], None]:
        name = descriptor.full_name
        if name not in self._parsers:
            setters: dict[str, Setter] = {}
            self._parsers[name] = lambda message, data: _apply(setters, message, data)
            for field in descriptor.fields:
                setters[field.json_name] = setters[field.name] = self._setter(field)
        return self._parsers[name]

    def _setter(self, field: FieldDescriptor) -> Setter:
        attr = field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_in = _scalar_in(field.message_type.fields_by_name["key"])
            value_field = field.message_type.fields_by_name["value"]
            value_in = _scalar_in(value_field)
            return lambda m, v: getattr(m, attr).update(
                {key_in(k): value_in(x) for k, x in v.items()}
            )
        if field.message_type is not None:
            wkt = field.message_type.full_name
            if wkt in JSON_STRING_WKT:
                return lambda m, v: getattr(m, attr).FromJsonString(v)
            if wkt.startswith("google.protobuf."):
                return lambda m, v: json_format.ParseDict({attr: v}, m)
            sub = self.parser(field.message_type)
            if field.is_repeated:

                def add_each(m: Message, v: Any) -> None:
                    container = getattr(m, attr)
                    for item in v:
                        sub(container.add(), item)

                return add_each
            return lambda m, v: sub(getattr(m, attr), v)
        convert = _scalar_in(field)
        if field.is_repeated:
            return lambda m, v: getattr(m, attr).extend(convert(item) for item in v)
        return lambda m, v: setattr(m, attr, convert(v))

    def printer(self, descriptor: Descriptor) -> Callable[[Message], dict[str, Any]]:
        name = descriptor.full_name
        if name not in self._printers:
            getters: dict[str, tuple[str, Getter]] = {}
            self._printers[name] = lambda message: {
                getters[f.name][0]: getters[f.name][1](v) for f, v in message.ListFields()
            }
            for field in descriptor.fields:
                getters[field.name] = (field.json_name, self._getter(field))
        return self._printers[name]

    def _getter(self, field: FieldDescriptor) -> Getter:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_out = _scalar_out(field.message_type.fields_by_name["value"])
            return lambda v: {str(k): value_out(x) for k, x in v.items()}
        if field.message_type is not None:
            if field.message_type.full_name in JSON_STRING_WKT:
                out: Getter = lambda v: v.ToJsonString()  # noqa: E731
            elif field.message_type.full_name.startswith("google.protobuf."):
                out = json_format.MessageToDict
            else:
                out = self.printer(field.message_type)
        else:
            out = _scalar_out(field)
        if field.is_repeated:
            return lambda v: [out(item) for item in v]
        return out


def _apply(setters: dict[str, Setter], message: Message, data: dict[str, Any]) -> None:
    for key, value in data.items():
        if value is not None:
            setters[key](message, value)


@dataclass(frozen=True)
class CodecTiming:
    payload: str
    json_bytes: int
    parse_json_format_us: float
    parse_compiled_us: float
    print_json_format_us: float
    print_compiled_us: float


def _mean_micros(work: Callable[[], object], budget_seconds: float = 0.3) -> float:
    work()
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget_seconds:
        work()
        runs += 1
    return elapsed / runs * 1e6


def time_codecs() -> list[CodecTiming]:
    pool = load_pool(echo_descriptor_set())
    request_cls = message_class(pool, REQUEST_TYPE)
    codec = CompiledCodec()
    parse, render = codec.parser(request_cls.DESCRIPTOR), codec.printer(request_cls.DESCRIPTOR)

    def time_one(name: str, body: bytes, wire: bytes) -> CodecTiming:
        reference = request_cls()
        json_format.ParseDict(orjson.loads(body), reference, descriptor_pool=pool)
        mine = request_cls()
        parse(mine, orjson.loads(body))
        if mine != reference or render(reference) != json_format.MessageToDict(reference):
            raise AssertionError(f"compiled codec disagrees with json_format on {name}")

        def parse_reference() -> bytes:
            message = request_cls()
            json_format.ParseDict(orjson.loads(body), message, descriptor_pool=pool)
            return message.SerializeToString()  # type: ignore[no-any-return]

        def parse_compiled() -> bytes:
            message = request_cls()
            parse(message, orjson.loads(body))
            return message.SerializeToString()  # type: ignore[no-any-return]

        return CodecTiming(
            name,
            len(body),
            _mean_micros(parse_reference),
            _mean_micros(parse_compiled),
            _mean_micros(
                lambda: orjson.dumps(json_format.MessageToDict(request_cls.FromString(wire)))
            ),
            _mean_micros(lambda: orjson.dumps(render(request_cls.FromString(wire)))),
        )

    return [time_one(p.name, p.json_body, p.proto_body) for p in build_payloads()]


if __name__ == "__main__":
    for timing in time_codecs():
        print(timing)
