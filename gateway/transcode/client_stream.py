"""Request bodies of client-streaming calls: a JSON array, or NDJSON."""

from __future__ import annotations

from google.protobuf.message import Message

from gateway.errors import BadRequest
from gateway.transcode import json_text
from gateway.transcode.json_codec import MessageCodec


def stream_messages(codec: MessageCodec, body: bytes, content_type: str) -> list[Message]:
    if not body.strip():
        return []
    if content_type.split(";")[0].strip() in ("application/x-ndjson", "application/jsonl"):
        return [codec.parse_json(line) for line in body.splitlines() if line.strip()]
    items = json_text.loads(body)
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise BadRequest("a client stream is a JSON array of messages, or NDJSON")
    messages = []
    for item in items:
        message = codec.new()
        codec.merge_dict(message, item)
        messages.append(message)
    return messages
