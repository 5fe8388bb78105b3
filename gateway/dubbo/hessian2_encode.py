"""Hessian 2.0 encoding, byte for byte the choices hessian-lite makes.

One ``Hessian2Encoder`` writes one stream: class definitions, type names and
object references are shared by every value written to it, as Dubbo shares a
single ``Hessian2Output`` across the fields of a request or response body.
Output is deterministic: the same values always give the same bytes.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.dubbo.errors import HessianError
from gateway.dubbo.hessian2_types import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    JavaLong,
    JavaObject,
    TypedList,
    TypedMap,
)

# Java splits strings and binaries into chunks whose length fits in 16 bits.
_STRING_CHUNK = 0x8000
_BINARY_CHUNK = 0x8000
_NON_BMP = re.compile("[\U00010000-\U0010ffff]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _as_surrogate_pair(match: re.Match[str]) -> str:
    code = ord(match.group()) - 0x10000
    return chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))


def _java_d2i(value: float) -> int:
    """Java's ``(int) double``: truncate, saturate at the int32 bounds, NaN -> 0."""
    if math.isnan(value):
        return 0
    if math.isinf(value):
        return INT32_MAX if value > 0 else INT32_MIN
    return max(INT32_MIN, min(INT32_MAX, int(value)))


def _date_millis(value: datetime) -> int:
    # A naive datetime is taken as UTC, so the result never depends on the host's zone.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class Hessian2Encoder:
    """Writes Python values as one Hessian 2.0 stream."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._ref_count = 0
        self._refs: dict[int, int] = {}
        # Objects that own a reference index stay alive until the stream is
        # done, so no later value can be given the same id() and be taken for them.
        self._ref_owners: list[object] = []
        self._class_defs: dict[tuple[str, tuple[str, ...]], int] = {}
        self._type_names: dict[str, int] = {}

    def getvalue(self) -> bytes:
        return bytes(self._out)

    def write(self, value: Any) -> None:
        """Append one value; containers are walked depth first."""
        if value is None:
            self._out.append(0x4E)
        elif value is True:
            self._out.append(0x54)
        elif value is False:
            self._out.append(0x46)
        elif isinstance(value, JavaLong):
            self.write_long(int(value))
        elif isinstance(value, int):
            if INT32_MIN <= value <= INT32_MAX:
                self.write_int(value)
            else:
                self.write_long(value)
        elif isinstance(value, float):
            self.write_double(value)
        elif isinstance(value, str):
            self.write_string(value)
        elif isinstance(value, bytes | bytearray | memoryview):
            self.write_binary(bytes(value))
        elif isinstance(value, datetime):
            self.write_date(value)
        else:
            self._write_container(value)

    def _write_container(self, value: Any) -> None:
        if isinstance(value, tuple):
            # Tuples are immutable and may be shared by the interpreter, so they
            # never become back-references; they still take an index as Java counts lists.
            self._ref_count += 1
            self._write_list_items(None, value)
            return
        if not isinstance(value, list | dict | JavaObject | TypedList | TypedMap):
            raise HessianError(f"cannot encode a value of type {type(value).__name__}")
        ref = self._refs.get(id(value))
        if ref is not None:
            self._out.append(0x51)
            self.write_int(ref)
            return
        self._refs[id(value)] = self._ref_count
        self._ref_count += 1
        self._ref_owners.append(value)
        if isinstance(value, list):
            self._write_list_items(None, value)
        elif isinstance(value, TypedList):
            self._write_list_items(value.type_name, value.items)
        elif isinstance(value, dict):
            self._write_map(None, value)
        elif isinstance(value, TypedMap):
            self._write_map(value.type_name, value.entries)
        else:
            self._write_object(value)

    def write_int(self, value: int) -> None:
        if not INT32_MIN <= value <= INT32_MAX:
            raise HessianError(f"{value} does not fit in a Java int")
        out = self._out
        if -16 <= value <= 47:
            out.append(0x90 + value)
        elif -2048 <= value <= 2047:
            out += bytes((0xC8 + (value >> 8), value & 0xFF))
        elif -262144 <= value <= 262143:
            out += bytes((0xD4 + (value >> 16), (value >> 8) & 0xFF, value & 0xFF))
        else:
            out.append(0x49)
            out += struct.pack(">i", value)

    def write_long(self, value: int) -> None:
        if not INT64_MIN <= value <= INT64_MAX:
            raise HessianError(f"{value} does not fit in a Java long")
        out = self._out
        if -8 <= value <= 15:
            out.append(0xE0 + value)
        elif -2048 <= value <= 2047:
            out += bytes((0xF8 + (value >> 8), value & 0xFF))
        elif -262144 <= value <= 262143:
            out += bytes((0x3C + (value >> 16), (value >> 8) & 0xFF, value & 0xFF))
        elif INT32_MIN <= value <= INT32_MAX:
            out.append(0x59)
            out += struct.pack(">i", value)
        else:
            out.append(0x4C)
            out += struct.pack(">q", value)

    def write_double(self, value: float) -> None:
        out = self._out
        as_int = _java_d2i(value)
        if as_int == value:
            if as_int == 0:
                out.append(0x5B)
            elif as_int == 1:
                out.append(0x5C)
            elif -128 <= as_int < 128:
                out += bytes((0x5D, as_int & 0xFF))
            elif -32768 <= as_int < 32768:
                out.append(0x5E)
                out += struct.pack(">h", as_int)
            else:
                self._write_double_mills_or_full(value)
            return
        self._write_double_mills_or_full(value)

    def _write_double_mills_or_full(self, value: float) -> None:
        # hessian-lite's 0x5f form: an int32 count of thousandths, used when exact.
        mills = _java_d2i(value * 1000.0)
        if 0.001 * mills == value:
            self._out.append(0x5F)
            self._out += struct.pack(">i", mills)
        else:
            self._out.append(0x44)
            self._out += struct.pack(">d", value)

    def write_string(self, value: str) -> None:
        # Lengths count UTF-16 code units and bytes are Java's per-unit UTF-8,
        # so a non-BMP character becomes a surrogate pair of two 3-byte sequences.
        units = value if value.isascii() else _NON_BMP.sub(_as_surrogate_pair, value)
        start, remaining = 0, len(units)
        while remaining > _STRING_CHUNK:
            length = _STRING_CHUNK
            if 0xD800 <= ord(units[start + length - 1]) <= 0xDBFF:
                length -= 1  # never split a surrogate pair across chunks
            self._out.append(0x52)
            self._out += length.to_bytes(2, "big")
            self._write_units(units[start : start + length])
            start += length
            remaining -= length
        if remaining <= 31:
            self._out.append(remaining)
        elif remaining <= 1023:
            self._out += bytes((0x30 + (remaining >> 8), remaining & 0xFF))
        else:
            self._out.append(0x53)
            self._out += remaining.to_bytes(2, "big")
        self._write_units(units[start:])

    def _write_units(self, units: str) -> None:
        self._out += units.encode("utf-8", "surrogatepass")

    def write_binary(self, value: bytes) -> None:
        out = self._out
        start, remaining = 0, len(value)
        while remaining > _BINARY_CHUNK:
            out.append(0x41)
            out += _BINARY_CHUNK.to_bytes(2, "big")
            out += value[start : start + _BINARY_CHUNK]
            start += _BINARY_CHUNK
            remaining -= _BINARY_CHUNK
        if remaining <= 15:
            out.append(0x20 + remaining)
        elif remaining <= 1023:
            out += bytes((0x34 + (remaining >> 8), remaining & 0xFF))
        else:
            out.append(0x42)
            out += remaining.to_bytes(2, "big")
        out += value[start:]

    def write_date(self, value: datetime) -> None:
        millis = _date_millis(value)
        minutes, rest = divmod(millis, 60_000)
        if rest == 0 and INT32_MIN <= minutes <= INT32_MAX:
            self._out.append(0x4B)
            self._out += struct.pack(">i", minutes)
        else:
            self._out.append(0x4A)
            self._out += struct.pack(">q", millis)

    def write_type(self, type_name: str) -> None:
        """A type name the first time it appears in the stream, its index after."""
        index = self._type_names.get(type_name)
        if index is not None:
            self.write_int(index)
            return
        self._type_names[type_name] = len(self._type_names)
        self.write_string(type_name)

    def _write_list_items(self, type_name: str | None, items: list[Any] | tuple[Any, ...]) -> None:
        length = len(items)
        if type_name is None:
            if length <= 7:
                self._out.append(0x78 + length)
            else:
                self._out.append(0x58)
                self.write_int(length)
        elif length <= 7:
            self._out.append(0x70 + length)
            self.write_type(type_name)
        else:
            self._out.append(0x56)
            self.write_type(type_name)
            self.write_int(length)
        for item in items:
            self.write(item)

    def _write_map(self, type_name: str | None, entries: Mapping[Any, Any]) -> None:
        if type_name is None:
            self._out.append(0x48)
        else:
            self._out.append(0x4D)
            self.write_type(type_name)
        for key, item in entries.items():
            self.write(key)
            self.write(item)
        self._out.append(0x5A)

    def _write_object(self, value: JavaObject) -> None:
        field_names = tuple(value.fields)
        if not all(isinstance(name, str) for name in field_names):
            raise HessianError(f"{value.class_name}: field names must be strings")
        key = (value.class_name, field_names)
        index = self._class_defs.get(key)
        if index is None:
            index = len(self._class_defs)
            self._class_defs[key] = index
            self._out.append(0x43)
            self.write_string(value.class_name)
            self.write_int(len(field_names))
            for name in field_names:
                self.write_string(name)
        if index <= 15:
            self._out.append(0x60 + index)
        else:
            self._out.append(0x4F)
            self.write_int(index)
        for item in value.fields.values():
            self.write(item)


def encode(*values: Any) -> bytes:
    """Encode ``values`` as one Hessian 2.0 stream (shared definitions and references)."""
    encoder = Hessian2Encoder()
    for value in values:
        encoder.write(value)
    return encoder.getvalue()
