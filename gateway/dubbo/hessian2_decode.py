"""Hessian 2.0 decoding: bytes in, Python values out, never a blocking read.

One ``Hessian2Decoder`` reads one stream: class definitions, type names and
back-references accumulate across the values read from it, as in Java's
``Hessian2Input``. Every read is bounds-checked, so truncated input raises
``HessianError`` naming the offset where the bytes ran out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.dubbo.errors import HessianError
from gateway.dubbo.hessian2_reader import ByteReader, join_surrogates
from gateway.dubbo.hessian2_types import JavaLong, JavaObject, TypedList, TypedMap

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_END = 0x5A
DEFAULT_MAX_DEPTH = 200

_Handler = Callable[["Hessian2Decoder", int], Any]


class _ClassDef:
    __slots__ = ("class_name", "field_names")

    def __init__(self, class_name: str, field_names: list[str]) -> None:
        self.class_name = class_name
        self.field_names = field_names


class Hessian2Decoder(ByteReader):
    """Reads Hessian 2.0 values from ``data`` starting at ``offset``."""

    def __init__(
        self,
        data: bytes | bytearray | memoryview,
        offset: int = 0,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        super().__init__(data, offset)
        self._max_depth = max_depth
        self._depth = 0
        self._refs: list[Any] = []
        self._class_defs: list[_ClassDef] = []
        self._type_names: list[str] = []

    def read(self) -> Any:
        """Decode the next value."""
        tag = self._byte()
        while tag == 0x43:
            # A class definition is not a value: the value it precedes follows.
            self._class_def()
            tag = self._byte()
        handler = _HANDLERS[tag]
        if handler is None:
            raise self._unexpected(tag, "a value")
        return handler(self, tag)

    def read_string(self) -> str:
        """Decode the next value, which must be a string."""
        value = self.read()
        if not isinstance(value, str):
            raise HessianError(
                f"expected a string before offset {self._pos}, got a {type(value).__name__}"
            )
        return value

    def read_int(self) -> int:
        """Decode the next value, which must be an int or a long."""
        value = self.read()
        if not isinstance(value, int) or isinstance(value, bool):
            raise HessianError(
                f"expected an integer before offset {self._pos}, got a {type(value).__name__}"
            )
        return value

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > self._max_depth:
            raise HessianError(
                f"values nested deeper than {self._max_depth} at offset {self._pos - 1}"
            )

    # -- scalars ---------------------------------------------------------------

    def _null(self, tag: int) -> None:
        return None

    def _true(self, tag: int) -> bool:
        return True

    def _false(self, tag: int) -> bool:
        return False

    def _int_1(self, tag: int) -> int:
        return tag - 0x90

    def _int_2(self, tag: int) -> int:
        return ((tag - 0xC8) << 8) + self._byte()

    def _int_3(self, tag: int) -> int:
        return ((tag - 0xD4) << 16) + int.from_bytes(self._take(2), "big")

    def _int_4(self, tag: int) -> int:
        return int.from_bytes(self._take(4), "big", signed=True)

    def _long_1(self, tag: int) -> JavaLong:
        return JavaLong(tag - 0xE0)

    def _long_2(self, tag: int) -> JavaLong:
        return JavaLong(((tag - 0xF8) << 8) + self._byte())

    def _long_3(self, tag: int) -> JavaLong:
        return JavaLong(((tag - 0x3C) << 16) + int.from_bytes(self._take(2), "big"))

    def _long_4(self, tag: int) -> JavaLong:
        return JavaLong(int.from_bytes(self._take(4), "big", signed=True))

    def _long_8(self, tag: int) -> JavaLong:
        return JavaLong(int.from_bytes(self._take(8), "big", signed=True))

    def _double_zero(self, tag: int) -> float:
        return 0.0

    def _double_one(self, tag: int) -> float:
        return 1.0

    def _double_byte(self, tag: int) -> float:
        return float(int.from_bytes(self._take(1), "big", signed=True))

    def _double_short(self, tag: int) -> float:
        return float(int.from_bytes(self._take(2), "big", signed=True))

    def _double_mills(self, tag: int) -> float:
        return 0.001 * int.from_bytes(self._take(4), "big", signed=True)

    def _double(self, tag: int) -> float:
        value: float = struct.unpack(">d", self._take(8))[0]
        return value

    def _date_millis(self, tag: int) -> datetime:
        return self._date(int.from_bytes(self._take(8), "big", signed=True))

    def _date_minutes(self, tag: int) -> datetime:
        return self._date(int.from_bytes(self._take(4), "big", signed=True) * 60_000)

    def _date(self, millis: int) -> datetime:
        try:
            return _EPOCH + timedelta(milliseconds=millis)
        except OverflowError as exc:
            raise HessianError(
                f"date {millis} ms since the epoch is outside the years "
                f"1-9999, before offset {self._pos}"
            ) from exc

    # -- strings and binaries --------------------------------------------------

    def _string(self, tag: int) -> str:
        parts: list[str] = []
        while True:
            if tag <= 0x1F:
                parts.append(self._units(tag))
                break
            if 0x30 <= tag <= 0x33:
                parts.append(self._units(((tag - 0x30) << 8) + self._byte()))
                break
            if tag == 0x53:
                parts.append(self._units(self._u16()))
                break
            if tag == 0x52:
                parts.append(self._units(self._u16()))
                tag = self._byte()
                continue
            raise self._unexpected(tag, "a string chunk")
        return join_surrogates("".join(parts))

    def _binary(self, tag: int) -> bytes:
        parts: list[bytes] = []
        while True:
            if 0x20 <= tag <= 0x2F:
                parts.append(self._take(tag - 0x20))
                break
            if 0x34 <= tag <= 0x37:
                parts.append(self._take(((tag - 0x34) << 8) + self._byte()))
                break
            if tag == 0x42:
                parts.append(self._take(self._u16()))
                break
            if tag == 0x41:
                parts.append(self._take(self._u16()))
                tag = self._byte()
                continue
            raise self._unexpected(tag, "a binary chunk")
        return b"".join(parts)

    # -- types, lists, maps ----------------------------------------------------

    def _type(self) -> str:
        tag = self._byte()
        if tag <= 0x1F or 0x30 <= tag <= 0x33 or tag in (0x52, 0x53):
            name = self._string(tag)
            self._type_names.append(name)
            return name
        handler = _HANDLERS[tag]
        if handler not in _INT_HANDLERS:
            raise self._unexpected(tag, "a type name or type reference")
        index = handler(self, tag)
        if not 0 <= index < len(self._type_names):
            raise HessianError(
                f"type reference {index} before offset {self._pos} is undefined "
                f"({len(self._type_names)} types seen)"
            )
        return self._type_names[index]

    def _length(self) -> int:
        length = self.read_int()
        if length < 0:
            raise HessianError(f"negative length {length} before offset {self._pos}")
        return length

    def _fill_fixed(self, items: list[Any], length: int) -> None:
        self._enter()
        for _ in range(length):
            items.append(self.read())
        self._depth -= 1

    def _fill_variable(self, items: list[Any]) -> None:
        self._enter()
        while self._peek() != _END:
            items.append(self.read())
        self._pos += 1
        self._depth -= 1

    def _list_compact_untyped(self, tag: int) -> list[Any]:
        items: list[Any] = []
        self._refs.append(items)
        self._fill_fixed(items, tag - 0x78)
        return items

    def _list_fixed_untyped(self, tag: int) -> list[Any]:
        length = self._length()
        items: list[Any] = []
        self._refs.append(items)
        self._fill_fixed(items, length)
        return items

    def _list_variable_untyped(self, tag: int) -> list[Any]:
        items: list[Any] = []
        self._refs.append(items)
        self._fill_variable(items)
        return items

    def _list_compact_typed(self, tag: int) -> TypedList:
        typed = TypedList(self._type())
        self._refs.append(typed)
        self._fill_fixed(typed.items, tag - 0x70)
        return typed

    def _list_fixed_typed(self, tag: int) -> TypedList:
        type_name = self._type()
        length = self._length()
        typed = TypedList(type_name)
        self._refs.append(typed)
        self._fill_fixed(typed.items, length)
        return typed

    def _list_variable_typed(self, tag: int) -> TypedList:
        typed = TypedList(self._type())
        self._refs.append(typed)
        self._fill_variable(typed.items)
        return typed

    def _map_untyped(self, tag: int) -> dict[Any, Any]:
        entries: dict[Any, Any] = {}
        self._refs.append(entries)
        self._fill_map(entries)
        return entries

    def _map_typed(self, tag: int) -> TypedMap:
        typed = TypedMap(self._type())
        self._refs.append(typed)
        self._fill_map(typed.entries)
        return typed

    def _fill_map(self, entries: dict[Any, Any]) -> None:
        self._enter()
        while self._peek() != _END:
            key_offset = self._pos
            key = self.read()
            value = self.read()
            try:
                entries[key] = value
            except TypeError as exc:
                raise HessianError(
                    f"map key at offset {key_offset} is a "
                    f"{type(key).__name__}, which Python cannot hash"
                ) from exc
        self._pos += 1
        self._depth -= 1

    # -- objects and references ------------------------------------------------

    def _class_def(self) -> None:
        class_name = self.read_string()
        count = self._length()
        field_names = [self.read_string() for _ in range(count)]
        self._class_defs.append(_ClassDef(class_name, field_names))

    def _object_compact(self, tag: int) -> JavaObject:
        return self._object(tag - 0x60)

    def _object_indexed(self, tag: int) -> JavaObject:
        return self._object(self.read_int())

    def _object(self, index: int) -> JavaObject:
        if not 0 <= index < len(self._class_defs):
            raise HessianError(
                f"object before offset {self._pos} uses class definition "
                f"{index}, but {len(self._class_defs)} are defined"
            )
        definition = self._class_defs[index]
        obj = JavaObject(definition.class_name)
        self._refs.append(obj)
        self._enter()
        for name in definition.field_names:
            obj.fields[name] = self.read()
        self._depth -= 1
        return obj

    def _ref(self, tag: int) -> Any:
        index = self.read_int()
        if not 0 <= index < len(self._refs):
            raise HessianError(
                f"reference {index} before offset {self._pos} is undefined "
                f"({len(self._refs)} objects seen)"
            )
        return self._refs[index]


def _handler_table() -> list[_Handler | None]:
    table: list[_Handler | None] = [None] * 256
    D = Hessian2Decoder

    def put(first: int, last: int, handler: _Handler) -> None:
        for tag in range(first, last + 1):
            table[tag] = handler

    put(0x00, 0x1F, D._string)
    put(0x20, 0x2F, D._binary)
    put(0x30, 0x33, D._string)
    put(0x34, 0x37, D._binary)
    put(0x38, 0x3F, D._long_3)
    put(0x41, 0x42, D._binary)
    put(0x44, 0x44, D._double)
    put(0x46, 0x46, D._false)
    put(0x48, 0x48, D._map_untyped)
    put(0x49, 0x49, D._int_4)
    put(0x4A, 0x4A, D._date_millis)
    put(0x4B, 0x4B, D._date_minutes)
    put(0x4C, 0x4C, D._long_8)
    put(0x4D, 0x4D, D._map_typed)
    put(0x4E, 0x4E, D._null)
    put(0x4F, 0x4F, D._object_indexed)
    put(0x51, 0x51, D._ref)
    put(0x52, 0x53, D._string)
    put(0x54, 0x54, D._true)
    put(0x55, 0x55, D._list_variable_typed)
    put(0x56, 0x56, D._list_fixed_typed)
    put(0x57, 0x57, D._list_variable_untyped)
    put(0x58, 0x58, D._list_fixed_untyped)
    put(0x59, 0x59, D._long_4)
    put(0x5B, 0x5B, D._double_zero)
    put(0x5C, 0x5C, D._double_one)
    put(0x5D, 0x5D, D._double_byte)
    put(0x5E, 0x5E, D._double_short)
    put(0x5F, 0x5F, D._double_mills)
    put(0x60, 0x6F, D._object_compact)
    put(0x70, 0x77, D._list_compact_typed)
    put(0x78, 0x7F, D._list_compact_untyped)
    put(0x80, 0xBF, D._int_1)
    put(0xC0, 0xCF, D._int_2)
    put(0xD0, 0xD7, D._int_3)
    put(0xD8, 0xEF, D._long_1)
    put(0xF0, 0xFF, D._long_2)
    return table


_HANDLERS = _handler_table()
_INT_HANDLERS = frozenset(
    {Hessian2Decoder._int_1, Hessian2Decoder._int_2, Hessian2Decoder._int_3, Hessian2Decoder._int_4}
)


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Decode exactly one value; trailing bytes are an error."""
    decoder = Hessian2Decoder(data)
    value = decoder.read()
    if not decoder.at_end():
        raise HessianError(
            f"{decoder.remaining} unexpected trailing bytes at offset {decoder.offset}"
        )
    return value


def decode_all(data: bytes | bytearray | memoryview) -> list[Any]:
    """Decode every value of one stream (shared definitions and references)."""
    decoder = Hessian2Decoder(data)
    values: list[Any] = []
    while not decoder.at_end():
        values.append(decoder.read())
    return values
