"""Compiled proto3 JSON conversion, one plan per message type (sans-IO).

protobuf's ``json_format`` walks descriptors in pure Python for every field
of every request; on this gateway's hot path that was most of a worker's CPU
(bench/results). Here the walk is done once per message type, when the
snapshot is built: each field gets a small converter, and a request only runs
the converters of the fields it carries.

The fast path is exact and strict. It handles the common cases itself and
hands anything unusual to ``json_format``: a value of an unexpected JSON type,
an unknown field, an enum name it does not know, a well-known type. So every
error message, and every lenient corner, is json_format's own; the fast path
never accepts what json_format would reject. ``tests/unit/test_fast_json.py``
checks that equivalence on generated inputs.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

F = FieldDescriptor
_INT64 = frozenset({F.CPPTYPE_INT64, F.CPPTYPE_UINT64})
_INTS = frozenset({F.CPPTYPE_INT32, F.CPPTYPE_UINT32, F.CPPTYPE_INT64, F.CPPTYPE_UINT64})
_FLOAT32_MAX = 3.4028234663852886e38
_INTEGER_TEXT = re.compile(r"^-?[0-9]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/\-_]*={0,2}$")
_UNPAIRED_SURROGATE = re.compile(
    "[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]"
)


_NULL_SPECIAL: frozenset[str] = frozenset()
_MAX_DEPTH = 90


class Fallback(Exception):
    """The fast path declines; json_format decides (and words any error)."""


Parse = Callable[[Any], Any]
Print = Callable[[Any], Any]


def _is_special_message(descriptor: Descriptor) -> bool:
    # Well-known types have their own JSON forms; json_format owns them.
    return bool(descriptor.full_name.startswith("google.protobuf."))


class MessagePlan:
    """How to parse and print one message type."""

    def __init__(self, descriptor: Descriptor, compiler: PlanCompiler) -> None:
        self.descriptor = descriptor
        self._compiler = compiler
        self._fields: dict[str, FieldPlan] = {}
        self._ordered: list[FieldPlan] = []
        self._no_presence: list[FieldPlan] = []
        self._has_oneofs = bool(descriptor.oneofs)
        self._printers: dict[FieldDescriptor, tuple[str, Print | None]] | None = None

    def compile(self) -> None:
        for field in self.descriptor.fields:
            plan = FieldPlan(field, self._compiler)
            self._ordered.append(plan)
            self._fields[field.name] = plan
            self._fields.setdefault(field.json_name, plan)
            if not field.has_presence:
                self._no_presence.append(plan)

    # -- parsing -------------------------------------------------------------

    def parse_into(self, data: dict[str, Any], message: Message, depth: int = 0) -> None:
        # json_format stops at 100 levels; leave the deep cases to it.
        if depth > _MAX_DEPTH:
            raise Fallback
        # A field given under both its names is fine (the last wins, as in
        # json_format); two members of one oneof are not, so json_format words it.
        oneofs: set[int] | None = set() if self._has_oneofs else None
        ignore_unknown = self._compiler.ignore_unknown
        fields = self._fields
        for key, value in data.items():
            plan = fields.get(key)
            if plan is None:
                if ignore_unknown and not key.startswith("["):
                    continue
                raise Fallback
            if oneofs is not None and value is not None:
                oneof = plan.field.containing_oneof
                if oneof is not None:
                    if oneof.index in oneofs:
                        raise Fallback
                    oneofs.add(oneof.index)
            plan._parse(message, value, depth)

    # -- printing ------------------------------------------------------------

    def to_json(self, message: Message) -> dict[str, Any]:
        printers = self._printers
        if printers is None:
            printers = self._printer_table()
        out: dict[str, Any] = {}
        for field, value in message.ListFields():
            entry = printers.get(field)
            if entry is None:
                return self._to_json_by_name(message)
            name, show = entry
            out[name] = value if show is None else show(value)
        return self._with_defaults(out) if self._compiler.print_defaults else out

    def _printer_table(self) -> dict[FieldDescriptor, tuple[str, Print | None]]:
        """Per field, its JSON name and printer (None: the value as it is),
        looked up by the descriptor ``ListFields`` gives: no per-field name,
        option or kind lookups for each message printed. Built on first use,
        once the compiler has set the well-known types' printers."""
        by_name = self._compiler.proto_names
        table: dict[FieldDescriptor, tuple[str, Print | None]] = {}
        for plan in self._ordered:
            field = plan.field
            show: Print | None = plan._print
            if plan.kind == "singular":
                show = plan._scalar_out if plan._sub is None else plan._sub.to_json
                if show is _as_is:
                    show = None
            table[field] = (field.name if by_name else field.json_name, show)
        self._printers = table
        return table

    def _to_json_by_name(self, message: Message) -> dict[str, Any]:
        # A field the table does not know by its descriptor (never seen so
        # far; kept as the safe path).
        by_name = self._compiler.proto_names
        out: dict[str, Any] = {}
        for field, value in message.ListFields():
            plan = self._fields[field.name]
            out[field.name if by_name else field.json_name] = plan.print(value)
        return self._with_defaults(out) if self._compiler.print_defaults else out

    def _with_defaults(self, out: dict[str, Any]) -> dict[str, Any]:
        by_name = self._compiler.proto_names
        for plan in self._no_presence:
            field = plan.field
            name = field.name if by_name else field.json_name
            if name not in out:
                out[name] = plan.default_json()
        return out


class FieldPlan:
    __slots__ = (
        "_parse",
        "_print",
        "_scalar_in",
        "_scalar_out",
        "_sub",
        "compiler",
        "field",
        "kind",
    )

    def __init__(self, field: FieldDescriptor, compiler: PlanCompiler) -> None:
        self.field = field
        self.compiler = compiler
        self._sub: MessagePlan | None = None
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            self.kind = "map"
        elif field.is_repeated:
            self.kind = "repeated"
        else:
            self.kind = "singular"
        value_field = field.message_type.fields_by_name["value"] if self.kind == "map" else field
        self._scalar_in = _scalar_parser(value_field) if value_field.message_type is None else None
        self._scalar_out = _scalar_printer(value_field, compiler.enums_as_ints)
        if value_field.message_type is not None and not _is_special_message(
            value_field.message_type
        ):
            self._sub = compiler.plan(value_field.message_type)
        self._parse = {
            "map": self._parse_map,
            "repeated": self._parse_repeated,
            "singular": self._parse_singular,
        }[self.kind]
        self._print = {
            "map": self._print_map,
            "repeated": self._print_repeated,
            "singular": self._print_one,
        }[self.kind]

    def parse(self, message: Message, value: Any, depth: int) -> None:
        self._parse(message, value, depth)

    def print(self, value: Any) -> Any:
        return self._print(value)

    # -- parse ---------------------------------------------------------------

    def _parse_singular(self, message: Message, value: Any, depth: int) -> None:
        name = self.field.name
        if value is None:
            if (
                self.field.full_name in _NULL_SPECIAL
                or (
                    self.field.message_type is not None
                    and self.field.message_type.full_name == "google.protobuf.Value"
                )
                or (
                    self.field.enum_type is not None
                    and self.field.enum_type.full_name == "google.protobuf.NullValue"
                )
            ):
                raise Fallback
            message.ClearField(name)
            return
        if self._scalar_in is not None:
            try:
                setattr(message, name, self._scalar_in(value))
            except (TypeError, ValueError):
                raise Fallback from None
            return
        sub = getattr(message, name)
        self._merge_message(sub, value, depth)

    def _parse_repeated(self, message: Message, value: Any, depth: int) -> None:
        if value is None:
            message.ClearField(self.field.name)
            return
        if not isinstance(value, list):
            raise Fallback
        target = getattr(message, self.field.name)
        del target[:]
        if self._scalar_in is not None:
            convert = self._scalar_in
            try:
                target.extend([convert(item) for item in value])
            except (TypeError, ValueError):
                raise Fallback from None
            return
        for item in value:
            if item is None:
                raise Fallback
            self._merge_message(target.add(), item, depth)

    def _parse_map(self, message: Message, value: Any, depth: int) -> None:
        if value is None:
            message.ClearField(self.field.name)
            return
        if not isinstance(value, dict):
            raise Fallback
        target = getattr(message, self.field.name)
        target.clear()
        key_of = _map_key_parser(self.field.message_type.fields_by_name["key"])
        for raw_key, item in value.items():
            if item is None:
                raise Fallback
            key = key_of(raw_key)
            if self._scalar_in is not None:
                try:
                    target[key] = self._scalar_in(item)
                except (TypeError, ValueError):
                    raise Fallback from None
            else:
                self._merge_message(target[key], item, depth)

    def _merge_message(self, sub: Message, value: Any, depth: int) -> None:
        if self._sub is None:
            # A well-known type: its JSON form is json_format's business.
            # BytesValue is declined: json_format decodes bad base64 leniently,
            # and the fallback path checks it first.
            if sub.DESCRIPTOR.full_name == "google.protobuf.BytesValue":
                raise Fallback
            try:
                json_format.ParseDict(
                    value,
                    sub,
                    ignore_unknown_fields=self.compiler.ignore_unknown,
                    descriptor_pool=self.compiler.pool,
                )
            except (json_format.ParseError, TypeError, ValueError, AttributeError):
                raise Fallback from None
            return
        if not isinstance(value, dict):
            raise Fallback
        sub.SetInParent()
        self._sub.parse_into(value, sub, depth + 1)

    # -- print ---------------------------------------------------------------

    def _print_one(self, value: Any) -> Any:
        if self._sub is not None:
            return self._sub.to_json(value)
        return self._scalar_out(value)

    def _print_repeated(self, values: Any) -> list[Any]:
        one = self._print_one
        return [one(v) for v in values]

    def _print_map(self, values: Any) -> dict[str, Any]:
        one = self._print_one
        out: dict[str, Any] = {}
        for key in values:
            text = ("true" if key else "false") if isinstance(key, bool) else str(key)
            out[text] = one(values[key])
        return out

    def default_json(self) -> Any:
        if self.kind == "map":
            return {}
        if self.kind == "repeated":
            return []
        return self._scalar_out(self.field.default_value)


def _scalar_parser(field: FieldDescriptor) -> Parse:
    cpp = field.cpp_type
    if cpp in _INTS:

        def parse_int(value: Any) -> int:
            if type(value) is int:
                return value
            if type(value) is str and _INTEGER_TEXT.match(value):
                return int(value)
            raise ValueError

        return parse_int
    if cpp in (F.CPPTYPE_DOUBLE, F.CPPTYPE_FLOAT):
        single = cpp == F.CPPTYPE_FLOAT

        def parse_float(value: Any) -> float:
            if type(value) is float or type(value) is int:
                number = float(value)
                if math.isfinite(number) and (not single or abs(number) <= _FLOAT32_MAX):
                    return number
            raise ValueError

        return parse_float
    if cpp == F.CPPTYPE_BOOL:

        def parse_bool(value: Any) -> bool:
            if type(value) is bool:
                return value
            raise ValueError

        return parse_bool
    if field.type == F.TYPE_BYTES:

        def parse_bytes(value: Any) -> bytes:
            if type(value) is not str or not _BASE64.match(value):
                raise ValueError
            text = value.replace("-", "+").replace("_", "/").rstrip("=")
            try:
                return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except binascii.Error:
                raise ValueError from None

        return parse_bytes
    if cpp == F.CPPTYPE_STRING:

        def parse_string(value: Any) -> str:
            if type(value) is str and not _UNPAIRED_SURROGATE.search(value):
                return value
            raise ValueError

        return parse_string
    if cpp == F.CPPTYPE_ENUM:
        by_name: dict[str, int] = {v.name: v.number for v in field.enum_type.values}
        numbers = frozenset(by_name.values())

        def parse_enum(value: Any) -> int:
            if type(value) is str:
                number = by_name.get(value)
                if number is not None:
                    return number
            elif type(value) is int and value in numbers:
                return int(value)
            raise ValueError

        return parse_enum
    raise AssertionError(f"no scalar parser for {field.full_name}")


def _map_key_parser(field: FieldDescriptor) -> Callable[[str], Any]:
    cpp = field.cpp_type
    if cpp == F.CPPTYPE_STRING:
        return lambda key: key
    if cpp == F.CPPTYPE_BOOL:

        def bool_key(key: str) -> bool:
            if key == "true":
                return True
            if key == "false":
                return False
            raise Fallback

        return bool_key

    def int_key(key: str) -> int:
        if _INTEGER_TEXT.match(key):
            return int(key)
        raise Fallback

    return int_key


def _scalar_printer(field: FieldDescriptor, enums_as_ints: bool) -> Print:
    cpp = field.cpp_type
    if cpp in _INT64:
        return str
    if cpp in (F.CPPTYPE_DOUBLE, F.CPPTYPE_FLOAT):
        single = cpp == F.CPPTYPE_FLOAT

        def print_float(value: float) -> Any:
            if math.isnan(value):
                return "NaN"
            if math.isinf(value):
                return "Infinity" if value > 0 else "-Infinity"
            return type_checkers.ToShortestFloat(value) if single else value

        return print_float
    if field.type == F.TYPE_BYTES:
        return lambda value: base64.b64encode(value).decode("ascii")
    if cpp == F.CPPTYPE_ENUM:
        if enums_as_ints:
            return _as_is
        if field.enum_type.full_name == "google.protobuf.NullValue":
            return lambda value: None
        names = {v.number: v.name for v in field.enum_type.values}
        return lambda value: names.get(value, value)
    if cpp == F.CPPTYPE_MESSAGE:
        # Well-known types print through json_format (set per compiler).
        return _PRINT_SPECIAL
    return _as_is


def _as_is(value: Any) -> Any:
    return value


def _PRINT_SPECIAL(value: Any) -> Any:
    raise AssertionError("replaced by PlanCompiler")


class PlanCompiler:
    """Plans for every message type reachable from the ones asked for, with
    one set of options (a route's transcode options)."""

    def __init__(
        self,
        pool: DescriptorPool,
        *,
        ignore_unknown: bool,
        proto_names: bool,
        print_defaults: bool,
        enums_as_ints: bool,
    ) -> None:
        self.pool = pool
        self.ignore_unknown = ignore_unknown
        self.proto_names = proto_names
        self.print_defaults = print_defaults
        self.enums_as_ints = enums_as_ints
        self._plans: dict[str, MessagePlan] = {}

    def plan(self, descriptor: Descriptor) -> MessagePlan:
        found = self._plans.get(descriptor.full_name)
        if found is None:
            found = MessagePlan(descriptor, self)
            self._plans[descriptor.full_name] = found
            found.compile()
            for field_plan in found._ordered:
                field_plan._scalar_out = self._special_printer(field_plan)
        return found

    def _special_printer(self, plan: FieldPlan) -> Print:
        if plan._scalar_out is not _PRINT_SPECIAL:
            return plan._scalar_out
        options = {
            "preserving_proto_field_name": self.proto_names,
            "always_print_fields_with_no_presence": self.print_defaults,
            "use_integers_for_enums": self.enums_as_ints,
            "descriptor_pool": self.pool,
        }
        return lambda value: json_format.MessageToDict(value, **options)
