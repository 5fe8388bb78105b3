"""Strict base64 for ``bytes`` fields in request JSON.

protobuf's json_format decodes bytes leniently: ``"!!!"`` becomes empty bytes
instead of an error, where Envoy and the proto3 JSON spec reject it. This
walk finds the bytes fields in the JSON before parsing and checks them. Only
message types that reach a bytes field at all are walked; the plan is worked
out once per type.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway.errors import BadRequest

_BASE64 = re.compile(r"^[A-Za-z0-9+/\-_]*={0,2}$")
_BYTES_VALUE = "google.protobuf.BytesValue"


def check_bytes_fields(data: Any, descriptor: Descriptor) -> None:
    if isinstance(data, dict) and _reaches_bytes(descriptor):
        _walk(data, descriptor, descriptor.name)


@functools.cache
def _reaches_bytes(descriptor: Descriptor, _seen: frozenset[str] = frozenset()) -> bool:
    if descriptor.full_name in _seen:
        return False
    seen = _seen | {descriptor.full_name}
    for f in descriptor.fields:
        if f.type == FieldDescriptor.TYPE_BYTES:
            return True
        if f.message_type is not None and (
            f.message_type.full_name == _BYTES_VALUE or _reaches_bytes(f.message_type, seen)
        ):
            return True
    return False


def _walk(data: dict[str, Any], descriptor: Descriptor, where: str) -> None:
    for key, value in data.items():
        f = descriptor.fields_by_camelcase_name.get(key) or descriptor.fields_by_name.get(key)
        if f is None or value is None:
            continue
        values: list[Any]
        if _is_map(f):
            values = list(value.values()) if isinstance(value, dict) else []
            f = f.message_type.fields_by_name["value"]
        elif _is_repeated(f):
            values = value if isinstance(value, list) else []
        else:
            values = [value]
        for item in values:
            _check_value(item, f, f"{where}.{f.name}")


def _check_value(value: Any, f: FieldDescriptor, where: str) -> None:
    if f.type == FieldDescriptor.TYPE_BYTES or (
        f.message_type is not None and f.message_type.full_name == _BYTES_VALUE
    ):
        if isinstance(value, str) and not _valid_base64(value):
            raise BadRequest(f"{where}: invalid base64 {value[:40]!r}")
    elif f.message_type is not None and isinstance(value, dict) and _reaches_bytes(f.message_type):
        _walk(value, f.message_type, where)


def _valid_base64(text: str) -> bool:
    if not _BASE64.match(text):
        return False
    standard = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_map(f: FieldDescriptor) -> bool:
    return f.message_type is not None and f.message_type.GetOptions().map_entry


def _is_repeated(f: FieldDescriptor) -> bool:
    return bool(f.is_repeated)
