"""HTTP headers <-> gRPC metadata, sans-IO.

The rule, in both directions:

* Request headers become metadata under the same (lower-cased) name, except
  hop-by-hop headers (RFC 9110 7.6.1: the fixed list, and any header the
  ``Connection`` header names), proxy credentials, pseudo headers, ``host`` (it is the
  HTTP/2 ``:authority``), ``content-type``, ``content-length``, ``te``,
  ``user-agent`` (gRPC sends its own) and the reserved ``grpc-*`` names.
  ``x-request-timeout`` and ``grpc-timeout`` are read as deadlines instead
  (see :func:`deadline_from_headers`) and not forwarded; they may only
  shorten the route's timeout, and a malformed or zero value is a 400.
* A ``-bin`` header carries base64 (padded or not) in HTTP and raw bytes in
  gRPC; an undecodable value is a 400.
* A header gRPC metadata cannot carry (a name outside ``[0-9a-z_.-]`` such as
  ``x-a!b``, a value with non-visible characters) is left out; a response
  header HTTP cannot carry (control bytes such as 0x7F) is dropped too,
  since the server would otherwise refuse the whole reply.
* Response metadata, initial and trailing, becomes response headers, except
  the reserved ``grpc-*`` names; ``-bin`` values are sent as base64.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Sequence

from gateway.config.model import duration_seconds
from gateway.errors import BadRequest
from gateway.upstream.call import Metadata

DROPPED_REQUEST_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "host",
        "content-type",
        "content-length",
        "user-agent",
        "expect",
        "http2-settings",
        "x-request-timeout",
        # Credentials for the client's proxy, never for the backend.
        "proxy-authorization",
    }
)

HeaderList = list[tuple[str, str]]

_GRPC_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_VISIBLE_ASCII = re.compile(r"^[\x20-\x7e]*$")
# gRPC metadata keys (PROTOCOL-HTTP2.md): lower-case letters, digits, - _ .
_GRPC_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
# What an HTTP/1.1 field name may hold (RFC 9110 5.6.2, tchar).
_HTTP_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def request_metadata(headers: Iterable[tuple[str, str]]) -> Metadata:
    headers = list(headers)
    # Connection: close, x-hop names more hop-by-hop headers for this hop only.
    named = _connection_tokens(headers)
    out: list[tuple[str, str | bytes]] = []
    for name, value in headers:
        if name in DROPPED_REQUEST_HEADERS or name.startswith((":", "grpc-")) or name in named:
            continue
        if not _GRPC_KEY_CHARS.issuperset(name):
            # Legal in HTTP (x-a!b) but not as a gRPC key: grpc would fail the
            # whole call over it, so the header is left out.
            continue
        if name.endswith("-bin"):
            out.append((name, _decode_binary(name, value)))
        elif _VISIBLE_ASCII.match(value):
            out.append((name, value))
        # Other values cannot travel as gRPC ASCII metadata; they are left out
        # rather than failing the whole request over an incidental header.
    return tuple(out)


def _connection_tokens(headers: Sequence[tuple[str, str]]) -> frozenset[str]:
    tokens = [
        token.strip().lower()
        for name, value in headers
        if name == "connection"
        for token in value.split(",")
    ]
    return frozenset(t for t in tokens if t)


def internal_header_strip(patterns: Sequence[str]) -> Callable[[HeaderList], HeaderList] | None:
    """A function removing the listener's internal headers (exact names or
    ``prefix*``), or None when there are none (the common case costs nothing)."""
    if not patterns:
        return None
    exact = frozenset(p.lower() for p in patterns if not p.endswith("*"))
    prefixes = tuple(p[:-1].lower() for p in patterns if p.endswith("*"))

    def strip(headers: HeaderList) -> HeaderList:
        return [
            (n, v)
            for n, v in headers
            if n not in exact and not (prefixes and n.startswith(prefixes))
        ]

    return strip


def _decode_binary(name: str, value: str) -> bytes:
    # Accept the URL-safe alphabet too; clients disagree on which to send.
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"header {name!r} must be base64") from None


def response_headers(*metadata: Sequence[tuple[str, str | bytes]] | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for group in metadata:
        for name, value in group or ():
            if name.startswith("grpc-") or not name or not _HTTP_TOKEN_CHARS.issuperset(name):
                continue
            if isinstance(value, bytes):
                out.append((name, base64.b64encode(value).decode("ascii")))
            elif _VISIBLE_ASCII.match(value):
                out.append((name, value))
            # A value with control bytes (0x7F...) cannot be an HTTP header; the
            # server would refuse the whole response over it. It is dropped.
    return out


# A timeout header longer than this is refused before it is looked at:
# ``grpc-timeout`` is at most 8 digits and a unit; a duration needs no more.
MAX_TIMEOUT_HEADER_CHARS = 32


def parse_grpc_timeout(value: str) -> float | None:
    """Seconds from a ``grpc-timeout`` value (``100m``, ``5S``); None if malformed.

    gRPC's grammar: 1 to 8 ASCII digits and one unit letter, nothing else."""
    text = value.strip()
    digits, unit = text[:-1], _GRPC_TIMEOUT_UNITS.get(text[-1:])
    if unit is None or not 1 <= len(digits) <= 8 or not digits.isascii() or not digits.isdigit():
        return None
    return int(digits) * unit


def parse_request_timeout(value: str) -> float | None:
    """Seconds from ``x-request-timeout``: milliseconds as Envoy's
    ``x-envoy-upstream-rq-timeout-ms``, or a duration with a unit; None if malformed."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        return int(text) / 1000.0
    return duration_seconds(text)


def _client_timeout(name: str, value: str, parse: Callable[[str], float | None]) -> float:
    if len(value) > MAX_TIMEOUT_HEADER_CHARS:
        raise BadRequest(f"header {name!r} is longer than {MAX_TIMEOUT_HEADER_CHARS} characters")
    seconds = parse(value)
    if seconds is None:
        raise BadRequest(f"header {name!r} is not a valid timeout: {value!r}")
    if seconds <= 0:
        # Zero would read as "no deadline" further down; a client may only
        # shorten the route's deadline, never lift it.
        raise BadRequest(f"header {name!r} must be a timeout greater than zero")
    return seconds


def deadline_from_headers(
    route_timeout: float | None, grpc_timeout: str | None, request_timeout: str | None
) -> float | None:
    """The call's timeout: the route's, shortened (never extended) by the client's.

    A malformed, over-long or zero client timeout is a 400 (BadRequest)."""
    timeout = route_timeout if route_timeout else None
    if grpc_timeout is not None:
        asked = _client_timeout("grpc-timeout", grpc_timeout, parse_grpc_timeout)
        timeout = asked if timeout is None else min(timeout, asked)
    if request_timeout is not None:
        asked = _client_timeout("x-request-timeout", request_timeout, parse_request_timeout)
        timeout = asked if timeout is None else min(timeout, asked)
    return timeout
