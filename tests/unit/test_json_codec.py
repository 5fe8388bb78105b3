from __future__ import annotations

import orjson
import pytest

from gateway.errors import BadRequest
from gateway.transcode.json_codec import MessageCodec, PrintOptions
from tests.support.protos import echo_descriptor_set, load_pool, message_class

POOL = load_pool(echo_descriptor_set())
REQUEST = message_class(POOL, "meshgate.test.v1.EchoRequest")


def codec(**options: bool) -> MessageCodec:
    ignore = options.pop("ignore_unknown_fields", False)
    return MessageCodec(
        REQUEST, POOL, ignore_unknown_fields=ignore, options=PrintOptions(**options)
    )


def test_both_field_names_accepted_lower_camel_printed() -> None:
    c = codec()
    a = c.parse_json(b'{"snakeCaseField": "x"}')
    b = c.parse_json(b'{"snake_case_field": "x"}')
    assert a == b
    assert orjson.loads(c.render(a)) == {"snakeCaseField": "x"}


def test_print_options() -> None:
    message = codec().parse_json(b'{"kind": "KIND_MAGAZINE", "big": "5"}')
    assert orjson.loads(codec(enums_as_ints=True).render(message)) == {"kind": 2, "big": "5"}
    plain = orjson.loads(
        codec(preserve_proto_field_names=True, always_print_primitive_fields=True).render(message)
    )
    assert plain["snake_case_field"] == ""
    assert plain["fail_code"] == 0
    assert plain["tags"] == []


def test_round_trip_is_stable() -> None:
    body = (
        b'{"message":"m","big":"-9223372036854775808","ubig":"18446744073709551615",'
        b'"tags":["a"],"labels":{"k":"v"},"data":"AAE=","when":"1970-01-01T00:00:00Z",'
        b'"ttl":"0s","maybe":0,"ratio":"NaN","extra":{"a":{"b":[true,null,1.5]}}}'
    )
    c = codec()
    once = c.render(c.parse_json(body))
    assert c.render(c.parse_json(once)) == once
    assert orjson.loads(once)["maybe"] == 0  # a wrapper keeps presence


def test_unknown_fields_rejected_or_ignored() -> None:
    with pytest.raises(BadRequest, match="unknown field 'nope'"):
        codec().parse_json(b'{"nope": 1}')
    assert codec(ignore_unknown_fields=True).parse_json(b'{"nope": 1}') == REQUEST()


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"null",
        b"1",
        b'"s"',
        b'{"big": 1.5}',
        b'{"nested": {"count": "x"}}',
        b'{"when": "yesterday"}',
    ],
)
def test_invalid_input_is_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        codec().parse_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": "!!!"}',
        b'{"data": "AAE"}x',
        b'{"nested": {}, "data": "a b"}',
    ],
)
def test_bytes_must_be_base64(body: bytes) -> None:
    with pytest.raises(BadRequest):
        codec().parse_json(body)


@pytest.mark.parametrize("value", ["AAE=", "AAE", "-_8=", ""])
def test_bytes_accept_both_alphabets_padded_or_not(value: str) -> None:
    codec().parse_json(orjson.dumps({"data": value}))


def test_an_any_whose_type_is_not_a_string_is_a_bad_request() -> None:
    """Found by schemathesis over the generated OpenAPI document: it was a 500."""
    from tests.support.bookstore_backend import bookstore_descriptor_set

    pool = load_pool(bookstore_descriptor_set())
    upload = MessageCodec(message_class(pool, "meshgate.test.v1.UploadCoverRequest"), pool)
    body = b'{"shelf": "0", "cover": {"contentType": "", "extensions": [{"@type": {}}]}}'
    with pytest.raises(BadRequest):
        upload.parse_json(body)
