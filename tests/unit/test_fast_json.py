"""The compiled JSON codec against protobuf's json_format, on adversarial input.

For random JSON objects keyed by real field names (both spellings) with values
of every JSON kind — right and wrong types, numbers as strings, huge and
fractional numbers, bad base64, nulls, nesting — the gateway's codec must
accept exactly what json_format (after the strict base64 check) accepts and
build the same message, and reject exactly what it rejects.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.transcode.bytes_check import check_bytes_fields
from gateway.transcode.json_codec import MessageCodec, PrintOptions
from tests.support.bookstore_backend import bookstore_descriptor_set
from tests.support.protos import echo_descriptor_set, load_pool, message_class

MESSAGES = [
    ("echo", "meshgate.test.v1.EchoRequest"),
    ("bookstore", "meshgate.test.v1.Book"),
    ("bookstore", "meshgate.test.v1.ListBooksRequest"),
]


@functools.cache
def pool(name: str) -> DescriptorPool:
    return load_pool(echo_descriptor_set() if name == "echo" else bookstore_descriptor_set())


LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "12",
            "1.5",
            "1e3",
            "abc",
            "AAE=",
            "AAE",
            "-_8",
            "!!",
            "KIND_BOOK",
            "KIND_NOPE",
            "GENRE_FICTION",
            "2024-01-01T00:00:00Z",
            "1.5s",
            "NaN",
            "Infinity",
            "true",
            "false",
            "18446744073709551615",
            "9223372036854775808",
            "a,b",
            "\u00e9\U0001f600",
        ]
    ),
)


def field_names(descriptor: Descriptor) -> list[str]:
    names: list[str] = []
    for field in descriptor.fields:
        names.extend({field.name, field.json_name})
    return [*names, "bogus"]


@st.composite
def json_for(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(field_names(descriptor)), max_size=6)):
        field = descriptor.fields_by_name.get(name) or descriptor.fields_by_camelcase_name.get(name)
        choices: list[st.SearchStrategy[Any]] = [LEAVES, st.lists(LEAVES, max_size=3)]
        if field is not None and field.message_type is not None and depth < 3:
            sub = field.message_type
            if sub.GetOptions().map_entry:
                choices.append(
                    st.dictionaries(st.sampled_from(["k", "1", "true", "x y"]), LEAVES, max_size=3)
                )
            elif not sub.full_name.startswith("google.protobuf."):
                nested = json_for(sub, depth + 1)
                choices += [nested, st.lists(nested, max_size=2)]
            else:
                choices.append(
                    st.dictionaries(st.sampled_from(["a", "seconds", "value"]), LEAVES, max_size=2)
                )
        data[name] = draw(st.one_of(*choices))
    return data


def reference(
    cls: type[Message], pool_: DescriptorPool, data: dict[str, Any], ignore_unknown: bool
) -> Message | None:
    message = cls()
    try:
        check_bytes_fields(data, message.DESCRIPTOR)
        json_format.ParseDict(
            data, message, ignore_unknown_fields=ignore_unknown, descriptor_pool=pool_
        )
    except (BadRequest, json_format.ParseError, ValueError, TypeError, RecursionError):
        return None
    return message


@pytest.mark.parametrize(("proto", "full_name"), MESSAGES, ids=[m for _, m in MESSAGES])
@pytest.mark.parametrize("ignore_unknown", [False, True])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_same_verdict_and_message_as_json_format(
    proto: str, full_name: str, ignore_unknown: bool, data: st.DataObject
) -> None:
    pool_ = pool(proto)
    cls = message_class(pool_, full_name)
    value = data.draw(json_for(cls.DESCRIPTOR))
    expected = reference(cls, pool_, value, ignore_unknown)
    codec = MessageCodec(cls, pool_, ignore_unknown_fields=ignore_unknown)
    message = cls()
    try:
        codec.merge_dict(message, value)
    except BadRequest:
        assert expected is None, (value, expected)
        return
    assert expected is not None, (value, message)
    assert message == expected, value


@pytest.mark.parametrize(("proto", "full_name"), MESSAGES, ids=[m for _, m in MESSAGES])
@pytest.mark.parametrize(
    "options",
    [
        PrintOptions(),
        PrintOptions(
            preserve_proto_field_names=True, always_print_primitive_fields=True, enums_as_ints=True
        ),
    ],
)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_prints_what_json_format_prints(
    proto: str, full_name: str, options: PrintOptions, data: st.DataObject
) -> None:
    pool_ = pool(proto)
    cls = message_class(pool_, full_name)
    message = reference(cls, pool_, data.draw(json_for(cls.DESCRIPTOR)), True)
    if message is None:
        return
    codec = MessageCodec(cls, pool_, options=options)
    assert codec.to_dict(message) == json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=options.always_print_primitive_fields,
        preserving_proto_field_name=options.preserve_proto_field_names,
        use_integers_for_enums=options.enums_as_ints,
        descriptor_pool=pool_,
    )


def test_merging_keeps_fields_already_set() -> None:
    pool_ = pool("echo")
    cls = message_class(pool_, "meshgate.test.v1.EchoRequest")
    codec = MessageCodec(cls, pool_)
    message = cls(message="from path", tags=["a"])
    codec.merge_dict(message, {"big": "5", "tags": ["b"]})
    assert (message.message, message.big, list(message.tags)) == ("from path", 5, ["b"])
    # A value the fast path declines must leave the earlier fields intact too.
    message = cls(message="from path")
    codec.merge_dict(message, {"ratio": "NaN"})
    assert message.message == "from path"
