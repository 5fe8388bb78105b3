"""Connect's JSON encoding: the protobuf JSON mapping, by the method's descriptors."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError, Message

from gateway.errors import BadRequest, BadUpstreamResponse, Code, GatewayError


@dataclass(frozen=True, slots=True)
class JsonMessages:
    request: type[Message]
    reply: type[Message]

    def to_proto(self, text: bytes) -> bytes:
        message = self.request()
        try:
            json_format.Parse(text, message)
        except (json_format.ParseError, UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"request JSON: {exc}") from None
        serialized: bytes = message.SerializeToString()
        return serialized

    def to_json(self, payload: bytes) -> bytes:
        try:
            message = self.reply.FromString(payload)
        except DecodeError as exc:
            raise BadUpstreamResponse(f"reply is not a {self.reply.DESCRIPTOR.full_name}") from exc
        text: str = json_format.MessageToJson(message, indent=None)
        return text.encode()


def json_messages(pool: DescriptorPool | None, service: str, method: str) -> JsonMessages:
    """The method's message classes; a clear error when the config has no descriptors for it."""
    try:
        assert pool is not None
        found = pool.FindServiceByName(service).FindMethodByName(method)
        if found is None:
            raise KeyError(method)
    except (AssertionError, KeyError):
        raise GatewayError(
            f"no descriptors for /{service}/{method}: the JSON encoding needs them "
            "(add the service's protos under descriptors:), or send application/proto",
            grpc_code=Code.UNIMPLEMENTED,
        ) from None
    return JsonMessages(
        message_factory.GetMessageClass(found.input_type),
        message_factory.GetMessageClass(found.output_type),
    )
