"""Properties of the JSON codec on the bookstore's messages.

For generated ``Book`` and ``ListBooksRequest`` messages (built through the
descriptor pool, no generated code), ``MessageCodec`` must render exactly what
protobuf's own ``json_format`` renders, and render -> parse -> render must be
stable and give back the same message.
"""

from __future__ import annotations

import functools
import string
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transcode.json_codec import MessageCodec
from tests.support.bookstore_backend import bookstore_descriptor_set
from tests.support.protos import load_pool, message_class

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)
# google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
TIMESTAMP_SECONDS = (-62135596800, 253402300799)
MAX_REPEATED = 3
EXAMPLES = 150


@functools.cache
def pool() -> DescriptorPool:
    return load_pool(bookstore_descriptor_set())


def codec(full_name: str) -> MessageCodec:
    return MessageCodec(message_class(pool(), full_name), pool())


_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_INT32: st.integers(*INT32),
    FieldDescriptor.TYPE_SINT32: st.integers(*INT32),
    FieldDescriptor.TYPE_SFIXED32: st.integers(*INT32),
    FieldDescriptor.TYPE_INT64: st.integers(*INT64),
    FieldDescriptor.TYPE_SINT64: st.integers(*INT64),
    FieldDescriptor.TYPE_SFIXED64: st.integers(*INT64),
    FieldDescriptor.TYPE_UINT32: st.integers(*UINT32),
    FieldDescriptor.TYPE_FIXED32: st.integers(*UINT32),
    FieldDescriptor.TYPE_UINT64: st.integers(*UINT64),
    FieldDescriptor.TYPE_FIXED64: st.integers(*UINT64),
    # NaN is left out only because NaN != NaN would fail the message equality.
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=False),
    FieldDescriptor.TYPE_FLOAT: st.floats(allow_nan=False, width=32),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_STRING: st.text(max_size=12),
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=12),
}

# FieldMask paths that survive the JSON form's lowerCamelCase conversion.
_MASK_PATH = st.lists(
    st.text(string.ascii_lowercase, min_size=1, max_size=5),
    min_size=1,
    max_size=3,
).map("_".join)


def _fill_timestamp(message: Any, draw: st.DrawFn) -> None:
    message.seconds = draw(st.integers(*TIMESTAMP_SECONDS))
    message.nanos = draw(st.integers(0, 999_999_999))


def _fill_field_mask(message: Any, draw: st.DrawFn) -> None:
    message.paths.extend(draw(st.lists(_MASK_PATH, max_size=MAX_REPEATED)))


_WELL_KNOWN = {
    "google.protobuf.Timestamp": _fill_timestamp,
    "google.protobuf.FieldMask": _fill_field_mask,
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([value.number for value in field.enum_type.values])
    return _SCALARS[field.type]


def _fill(message: Any, descriptor: Descriptor, draw: st.DrawFn, depth: int) -> None:
    filler = _WELL_KNOWN.get(descriptor.full_name)
    if filler is not None:
        filler(message, draw)
        return
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            entries = draw(
                st.dictionaries(_scalar(key_field), _scalar(value_field), max_size=MAX_REPEATED)
            )
            getattr(message, field.name).update(entries)
        elif field.is_repeated:
            if field.message_type is not None:
                for _ in range(draw(st.integers(0, MAX_REPEATED)) if depth < 3 else 0):
                    _fill(getattr(message, field.name).add(), field.message_type, draw, depth + 1)
            else:
                getattr(message, field.name).extend(
                    draw(st.lists(_scalar(field), max_size=MAX_REPEATED))
                )
        elif field.message_type is not None:
            if depth < 3:
                child = getattr(message, field.name)
                child.SetInParent()
                _fill(child, field.message_type, draw, depth + 1)
        else:
            setattr(message, field.name, draw(_scalar(field)))


@st.composite
def messages(draw: st.DrawFn, full_name: str) -> Message:
    cls = message_class(pool(), full_name)
    message = cls()
    _fill(message, cls.DESCRIPTOR, draw, 0)
    return message


def check_round_trip(full_name: str, message: Message) -> None:
    the_codec = codec(full_name)
    rendered = the_codec.render(message)
    assert orjson.loads(rendered) == json_format.MessageToDict(message, descriptor_pool=pool()), (
        rendered
    )
    parsed = the_codec.parse_json(rendered)
    assert parsed == message, (rendered, parsed)
    # Stable as JSON; map entries may come out in another order after a parse
    # (protobuf maps are unordered), which JSON object equality ignores.
    assert orjson.loads(the_codec.render(parsed)) == orjson.loads(rendered)


@settings(max_examples=EXAMPLES, deadline=None)
@given(messages("meshgate.test.v1.Book"))
def test_book_round_trip(message: Message) -> None:
    check_round_trip("meshgate.test.v1.Book", message)


@settings(max_examples=EXAMPLES, deadline=None)
@given(messages("meshgate.test.v1.ListBooksRequest"))
def test_list_books_request_round_trip(message: Message) -> None:
    check_round_trip("meshgate.test.v1.ListBooksRequest", message)


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(messages("meshgate.test.v1.ListBooksResponse"))
def test_list_books_response_round_trip(message: Message) -> None:
    """Books inside a reply, plus the echoed request: nesting of both message types."""
    check_round_trip("meshgate.test.v1.ListBooksResponse", message)


def test_generated_messages_reach_every_field_kind() -> None:
    """The strategies above can set every field of both messages (guards against a
    field type being silently skipped by ``_fill``)."""
    for full_name in ("meshgate.test.v1.Book", "meshgate.test.v1.ListBooksRequest"):
        descriptor = message_class(pool(), full_name).DESCRIPTOR
        for field in descriptor.fields:
            kind = field.message_type.full_name if field.message_type else field.type
            assert (
                field.message_type is not None
                or field.type in _SCALARS
                or field.type == FieldDescriptor.TYPE_ENUM
            ), (full_name, field.name, kind)
