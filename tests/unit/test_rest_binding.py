from __future__ import annotations

import orjson
import pytest

from gateway.errors import BadRequest
from gateway.transcode.json_codec import MessageCodec, PrintOptions
from gateway.transcode.path_matcher import VariableBinding
from gateway.transcode.rest import QueryOptions, bindings_into, body_into, response_payload
from tests.support.protos import echo_descriptor_set, load_pool, message_class

POOL = load_pool(echo_descriptor_set())
CODEC = MessageCodec(message_class(POOL, "meshgate.test.v1.EchoRequest"), POOL)
REPLY = MessageCodec(message_class(POOL, "meshgate.test.v1.EchoReply"), POOL)
STRICT = QueryOptions()


def bind(
    pairs: list[tuple[str, str]],
    path_variables: int = 0,
    options: QueryOptions = STRICT,
    body: bytes = b"",
    body_path: str = "",
) -> dict[str, object]:
    message = CODEC.new()
    body_into(CODEC, message, body_path, body, "application/json")
    bindings = [VariableBinding(tuple(name.split(".")), value) for name, value in pairs]
    bindings_into(CODEC, message, bindings, options, path_variables)
    return orjson.loads(CODEC.render(message))


def test_scalars_enums_and_well_known_types_from_strings() -> None:
    assert bind(
        [
            ("message", "hi"),
            ("big", "-5"),
            ("kind", "KIND_BOOK"),
            ("flag", "true"),
            ("ratio", "0.5"),
            ("when", "2024-01-01T00:00:00Z"),
            ("ttl", "2s"),
            ("maybe", "3"),
            ("data", "AP8"),
        ]
    ) == {
        "message": "hi",
        "big": "-5",
        "kind": "KIND_BOOK",
        "flag": True,
        "ratio": 0.5,
        "when": "2024-01-01T00:00:00Z",
        "ttl": "2s",
        "maybe": 3,
        "data": "AP8=",
    }


def test_enum_by_number_and_repeated_keys_append() -> None:
    assert bind([("kind", "2"), ("tags", "a"), ("tags", "b")]) == {
        "kind": "KIND_MAGAZINE",
        "tags": ["a", "b"],
    }


def test_nested_fields_and_maps() -> None:
    assert bind([("nested.name", "n"), ("nested.count", "4"), ("labels[k]", "v")]) == {
        "nested": {"name": "n", "count": 4},
        "labels": {"k": "v"},
    }


def test_lower_camel_names_are_accepted_too() -> None:
    assert bind([("snakeCaseField", "x")]) == {"snakeCaseField": "x"}


@pytest.mark.parametrize(
    ("pairs", "needle"),
    [
        ([("nope", "1")], "query parameter 'nope'"),
        ([("flag", "maybe")], "takes true or false"),
        ([("nested", "x")], "message field"),
        ([("big", "x")], "big"),
        ([("data", "!!")], "invalid base64"),
    ],
)
def test_bad_values_are_400(pairs: list[tuple[str, str]], needle: str) -> None:
    with pytest.raises(BadRequest, match=needle):
        bind(pairs)


def test_unknown_and_ignored_query_parameters() -> None:
    assert bind([("nope", "1")], options=QueryOptions(ignore_unknown=True)) == {}
    assert bind([("api_key", "s")], options=QueryOptions(ignored=frozenset({"api_key"}))) == {}
    # A path variable naming no field is never ignored.
    with pytest.raises(BadRequest, match="path variable"):
        bind([("nope", "1")], path_variables=1, options=QueryOptions(ignore_unknown=True))


def test_path_and_query_override_the_body() -> None:
    assert bind(
        [("message", "from-path")],
        path_variables=1,
        body=b'{"message": "from-body", "big": "1"}',
        body_path="*",
    ) == {"message": "from-path", "big": "1"}


def test_body_into_a_field() -> None:
    assert bind([], body=b'{"name": "n", "count": 2}', body_path="nested") == {
        "nested": {"name": "n", "count": 2}
    }


def test_response_body_selects_a_field() -> None:
    reply = REPLY.new()
    reply.served_by = "x"
    reply.request.tags.extend(["a"])
    assert response_payload(REPLY, reply, "served_by") == ("application/json", b'"x"')
    assert response_payload(REPLY, reply, "request.tags") == ("application/json", b'["a"]')
    assert response_payload(REPLY, REPLY.new(), "metadata") == ("application/json", b"{}")
    assert response_payload(REPLY, reply, "") == (
        "application/json",
        b'{"request":{"tags":["a"]},"servedBy":"x"}',
    )


def test_print_options_reach_response_body() -> None:
    codec = MessageCodec(
        message_class(POOL, "meshgate.test.v1.EchoReply"),
        POOL,
        options=PrintOptions(preserve_proto_field_names=True),
    )
    reply = codec.new()
    reply.request.snake_case_field = "s"
    assert response_payload(codec, reply, "request") == (
        "application/json",
        b'{"snake_case_field":"s"}',
    )
