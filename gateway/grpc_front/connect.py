"""The Connect protocol (connectrpc.com/docs/protocol), sans-IO.

* Unary: the body is the bare message (``application/proto`` or
  ``application/json``); response headers carry the initial metadata and the
  trailers prefixed ``trailer-``; an error is an HTTP status from the code
  and a JSON body ``{"code": "not_found", "message": ..., "details": [...]}``.
* GET (side-effect free unary): ``?message=...&encoding=proto|json``, with
  ``base64=1`` for URL-safe base64 and ``compression=`` / ``connect=v1``.
* Streaming (``application/connect+proto`` / ``+json``): enveloped messages
  both ways; the response always has HTTP 200 and ends with an envelope of
  flag 0x02 holding ``{"error": {...}, "metadata": {"name": ["value"]}}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs

from google.rpc import status_pb2

from gateway.errors import Code, http_status_for
from gateway.grpc_front.frames import CONNECT_END_STREAM, encode_frame
from gateway.grpc_front.status import Status, metadata_fields

STREAM_PREFIX = "application/connect+"
TIMEOUT_HEADER = "connect-timeout-ms"
# Connect spells CANCELLED with one L; every other name is gRPC's, lower-cased.
CODE_NAMES: dict[int, str] = {
    code: ("canceled" if code == Code.CANCELLED else code.name.lower())
    for code in Code
    if code != Code.OK
}
CODES_BY_NAME = {name: code for code, name in CODE_NAMES.items()}
_DETAILS_FIELD = "grpc-status-details-bin"


class ConnectRequestError(Exception):
    """A Connect request the gateway cannot read (an invalid_argument)."""


@dataclass(frozen=True, slots=True)
class GetRequest:
    message: bytes
    encoding: str  # proto | json
    compression: str | None


def is_streaming(content_type: str) -> bool:
    return content_type.startswith(STREAM_PREFIX)


def codec_of(content_type: str) -> str | None:
    """proto or json for a Connect content type (unary or streaming), else None."""
    base = content_type.split(";", 1)[0].strip()
    sub = (
        base.removeprefix(STREAM_PREFIX)
        if is_streaming(base)
        else base.removeprefix("application/")
    )
    return sub if sub in ("proto", "json") else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def error_object(status: Status) -> dict[str, object]:
    """The Connect error JSON for a non-OK status; google.rpc.Status details
    (grpc-status-details-bin) become ``{"type", "value"}`` entries."""
    error: dict[str, object] = {"code": CODE_NAMES.get(status.code, "unknown")}
    if status.message:
        error["message"] = status.message
    details = _details(status.trailing)
    if details:
        error["details"] = details
    return error


def _details(trailing: Iterable[tuple[str, str | bytes]]) -> list[dict[str, str]]:
    for name, value in trailing:
        if name == _DETAILS_FIELD and isinstance(value, bytes):
            try:
                parsed = status_pb2.Status.FromString(value)
            except Exception:  # a malformed details blob is the backend's; leave it out
                return []
            return [
                {"type": any_.type_url.rsplit("/", 1)[-1], "value": _b64(any_.value)}
                for any_ in parsed.details
            ]
    return []


def error_body(status: Status) -> bytes:
    return json.dumps(error_object(status)).encode()


def http_status(code: int) -> int:
    """The spec's table, which is gRPC's mapping (canceled is 499)."""
    return http_status_for(code)


def trailer_fields(trailing: Iterable[tuple[str, str | bytes]]) -> list[tuple[str, str]]:
    """Unary trailers as response headers, each name prefixed ``trailer-`` (the
    status details travel in the error JSON instead)."""
    return [
        (f"trailer-{name}", value)
        for name, value in metadata_fields(trailing)
        if name != _DETAILS_FIELD
    ]


def end_stream(status: Status) -> bytes:
    """The final envelope of a streaming response (flag 0x02)."""
    body: dict[str, object] = {}
    if status.code != Code.OK:
        body["error"] = error_object(status)
    metadata: dict[str, list[str]] = {}
    for name, value in metadata_fields(status.trailing):
        if name != _DETAILS_FIELD:
            metadata.setdefault(name, []).append(value)
    if metadata:
        body["metadata"] = metadata
    return encode_frame(json.dumps(body).encode(), CONNECT_END_STREAM)


def parse_get(query_string: bytes) -> GetRequest:
    """The message of a GET request from its query parameters."""
    params = parse_qs(query_string.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    encoding = _one(params, "encoding")
    if encoding not in ("proto", "json"):
        raise ConnectRequestError("GET needs encoding=proto or encoding=json")
    raw = _one(params, "message") or ""
    if _one(params, "base64") == "1":
        padded = raw + "=" * (-len(raw) % 4)
        try:
            standard = padded.replace("-", "+").replace("_", "/").encode("ascii")
            message = base64.b64decode(standard, validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise ConnectRequestError("message is not URL-safe base64") from None
    else:
        message = raw.encode("latin-1")  # parse_qs decoded %XX as latin-1: the raw bytes
    compression = _one(params, "compression")
    return GetRequest(message, encoding, compression if compression != "identity" else None)


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def parse_timeout(value: str | None) -> float | None:
    """Seconds from ``connect-timeout-ms`` (at most 10 digits); a bad value is an error."""
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit() and 1 <= len(text) <= 10) or int(text) == 0:
        raise ConnectRequestError(f"connect-timeout-ms is not a positive integer: {value!r}")
    return int(text) / 1000.0
