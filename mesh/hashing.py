"""Request hash keys for ring hash and Maglev, from a route's hash policies.

One implementation serves xDS routes (RDS ``hash_policy``) and static YAML
clusters (``hash_policy:``): a policy names one request attribute (a header,
a cookie, the source IP, a query parameter, or the channel), and the key is
Envoy's combination of the attributes that are present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from http.cookies import CookieError, SimpleCookie

from mesh.hashing_lb import hash64
from mesh.xds.matchers import header_value

Headers = Mapping[str, str | Sequence[str]]
MASK64 = 2**64 - 1


class HashOn(Enum):
    HEADER = "header"
    COOKIE = "cookie"
    SOURCE_IP = "source_ip"
    QUERY_PARAMETER = "query_parameter"
    # gRPC's filter_state io.grpc.channel_id: one random but stable key per client.
    CHANNEL = "channel"


@dataclass(frozen=True, slots=True)
class HashPolicy:
    on: HashOn
    name: str = ""  # header, cookie or query parameter name
    terminal: bool = False


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """What a hash policy may read from one request, besides its headers."""

    source_ip: str | None = None
    query_string: bytes = b""
    # The headers as they came, one entry per line (names lower-case), when the
    # caller has them: a repeated header is hashed from its separate values.
    header_list: Sequence[tuple[str, str]] = ()


def hash_key(
    policies: Sequence[HashPolicy],
    headers: Headers,
    channel_key: int,
    attributes: RequestAttributes | None = None,
) -> int | None:
    """The request's 64-bit key, or None when no policy found its attribute."""
    key: int | None = None
    for policy in policies:
        if policy.on is HashOn.CHANNEL:
            value: int | None = channel_key
        else:
            text = _attribute(policy, headers, attributes or _NO_ATTRIBUTES)
            value = None if text is None else _hash_values(text)
        if value is not None:
            # Envoy's combination: rotate the running key left by one, then xor,
            # so that two identical policies do not cancel each other out.
            key = value if key is None else (((key << 1) | (key >> 63)) & MASK64) ^ value
        # Envoy stops at a terminal policy once any key exists, even when this
        # policy itself found nothing.
        if policy.terminal and key is not None:
            break
    return key


_NO_ATTRIBUTES = RequestAttributes()


def _attribute(
    policy: HashPolicy, headers: Headers, attributes: RequestAttributes
) -> str | tuple[str, ...] | None:
    if policy.on is HashOn.HEADER:
        if attributes.header_list:
            return _repeated_header(attributes.header_list, policy.name)
        return _header(headers, policy.name)
    if policy.on is HashOn.COOKIE:
        return _cookie(header_value(headers, "cookie"), policy.name)
    if policy.on is HashOn.SOURCE_IP:
        return attributes.source_ip
    if policy.on is HashOn.QUERY_PARAMETER:
        return _query_parameter(attributes.query_string, policy.name)
    return None


def _wire_bytes(text: str) -> bytes:
    """The bytes Envoy would hash: HTTP header text arrives decoded as latin-1, so
    encoding it back gives the bytes on the wire; other text (gRPC metadata) as UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode()


def _hash_values(text: str | tuple[str, ...]) -> int:
    if isinstance(text, str):
        return hash64(_wire_bytes(text))
    # A repeated header, as Envoy hashes it: the values sorted (so that their
    # order does not matter), each hashed with the previous hash as its seed.
    key = 0
    for value in sorted(_wire_bytes(v) for v in text):
        key = hash64(value, key)
    return key


def _header(headers: Headers, name: str) -> str | tuple[str, ...] | None:
    value = headers.get(name)
    if value is None or isinstance(value, str):
        return value
    return tuple(value) if value else None


def _repeated_header(
    header_list: Sequence[tuple[str, str]], name: str
) -> str | tuple[str, ...] | None:
    values = tuple(value for key, value in header_list if key == name)
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _cookie(header: str | None, name: str) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header.replace(",", ";"))
    except CookieError:
        return None
    morsel = jar.get(name)
    return None if morsel is None else morsel.value


def _query_parameter(query_string: bytes, name: str) -> str | None:
    """The first value of the parameter, as it is on the wire: Envoy hashes it
    without percent-decoding."""
    if not query_string:
        return None
    for pair in query_string.decode("latin-1").split("&"):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return None
