"""Strict JSON text: duplicate keys are found exactly, at the cost of a count."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.transcode.json_text import loads

# Keys and strings full of the characters the count depends on.
text = st.text(alphabet=st.sampled_from(["a", "b", ":", '"', "\\", "u", "0", "3", " ", "é"]))
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)


@given(values)
@settings(max_examples=150)
def test_text_without_duplicates_loads_as_is(value: object) -> None:
    assert loads(orjson.dumps(value)) == value
    assert loads(json.dumps(value, ensure_ascii=True).encode()) == value


@given(st.dictionaries(text, values, min_size=1, max_size=4), st.data())
@settings(max_examples=150)
def test_any_repeated_key_is_found(obj: dict[str, object], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(obj)))
    members = [json.dumps(k) + ":" + json.dumps(v) for k, v in obj.items()]
    members.append(json.dumps(key) + ":" + json.dumps(data.draw(values)))
    body = ("{" + ",".join(members) + "}").encode()
    with pytest.raises(BadRequest, match="duplicate key"):
        loads(body)
    nested = b'{"outer": [1, ' + body + b"]}"
    with pytest.raises(BadRequest, match="duplicate key"):
        loads(nested)


@pytest.mark.parametrize(
    "body",
    [b'{"a": "\\u003a", "a": 1}', b'{"a": "\\u003A", "a": "\\u003a"}', b'{"x": {"k": 1, "k": 1}}'],
)
def test_escaped_colons_cannot_hide_a_duplicate(body: bytes) -> None:
    with pytest.raises(BadRequest, match="duplicate key"):
        loads(body)


def test_escaped_backslash_before_u003a_is_not_a_duplicate() -> None:
    assert loads(b'{"a": "\\\\u003a"}') == {"a": "\\u003a"}


def test_malformed_and_too_deep_are_400() -> None:
    with pytest.raises(BadRequest, match="malformed JSON"):
        loads(b'{"a": ')
    with pytest.raises(BadRequest):
        loads(b"[" * 5000 + b"]" * 5000)
