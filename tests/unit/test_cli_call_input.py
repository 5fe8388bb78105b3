"""How ``meshgate call`` reads its request: one message, or a client stream."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from gateway.cli_call import UsageError, _json_values, _request_messages
from gateway.transcode.json_codec import MessageCodec

F = descriptor_pb2.FieldDescriptorProto


def method(client_streaming: bool):  # type: ignore[no-untyped-def]
    file = descriptor_pb2.FileDescriptorProto(name="c.proto", package="c", syntax="proto3")
    note = file.message_type.add(name="Note")
    note.field.add(name="text", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    note.field.add(name="big", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    service = file.service.add(name="Notes")
    service.method.add(
        name="Send", input_type=".c.Note", output_type=".c.Note", client_streaming=client_streaming
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    found = pool.FindServiceByName("c.Notes").methods_by_name["Send"]
    codec = MessageCodec(message_factory.GetMessageClass(found.input_type), pool)
    return found, codec


def texts(codec: MessageCodec, messages: list[bytes]) -> list[str]:
    return [codec.parse_bytes(m).text for m in messages]  # type: ignore[attr-defined]


def test_several_documents_one_after_another() -> None:
    assert _json_values('{"a": 1}\n{"b": 2}  [3]') == [{"a": 1}, {"b": 2}, [3]]
    assert _json_values("  ") == []
    with pytest.raises(UsageError, match="malformed JSON"):
        _json_values('{"a": ')


def test_a_unary_request_is_one_message() -> None:
    send, codec = method(client_streaming=False)
    [message] = _request_messages(codec, send, '{"text": "hi", "big": "12"}')
    assert codec.parse_bytes(message).big == 12  # type: ignore[attr-defined]
    assert texts(codec, _request_messages(codec, send, "")) == [""]  # nothing: the empty message
    with pytest.raises(UsageError, match="takes one request message"):
        _request_messages(codec, send, '{"text": "a"} {"text": "b"}')


def test_a_client_stream_is_an_array_or_one_document_per_message() -> None:
    send, codec = method(client_streaming=True)
    as_array = _request_messages(codec, send, '[{"text": "a"}, {"text": "b"}]')
    as_lines = _request_messages(codec, send, '{"text": "a"}\n{"text": "b"}\n')
    assert texts(codec, as_array) == texts(codec, as_lines) == ["a", "b"]


def test_a_field_the_message_does_not_have_is_a_usage_error() -> None:
    send, codec = method(client_streaming=False)
    with pytest.raises(UsageError, match="nope"):
        _request_messages(codec, send, '{"nope": 1}')
