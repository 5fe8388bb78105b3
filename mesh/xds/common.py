"""Small translations shared by every xDS resource type."""

from __future__ import annotations

from typing import TypeVar

from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError, Message

from mesh.errors import ResourceError

M = TypeVar("M", bound=Message)

_DENOMINATORS = {
    percent_pb2.FractionalPercent.HUNDRED: 100,
    percent_pb2.FractionalPercent.TEN_THOUSAND: 10_000,
    percent_pb2.FractionalPercent.MILLION: 1_000_000,
}

MAX_DURATION_SECONDS = 315_576_000_000


def seconds(value: duration_pb2.Duration) -> float:
    if value.seconds < 0 or value.nanos < 0 or value.seconds > MAX_DURATION_SECONDS:
        raise ResourceError(f"duration {value.seconds}s {value.nanos}ns is out of range")
    if value.nanos >= 1_000_000_000:
        raise ResourceError(f"duration nanos {value.nanos} is out of range")
    return float(value.seconds + value.nanos / 1e9)


def fraction(value: percent_pb2.FractionalPercent) -> tuple[int, int]:
    """(numerator, denominator), numerator capped at the denominator as Envoy does."""
    try:
        denominator = _DENOMINATORS[value.denominator]
    except KeyError:
        raise ResourceError(f"unknown FractionalPercent denominator {value.denominator}") from None
    return min(value.numerator, denominator), denominator


def unpack(packed: any_pb2.Any, message_type: type[M], where: str) -> M:
    message: M = message_type()
    expected = message.DESCRIPTOR.full_name
    if packed.type_url.rpartition("/")[2] != expected:
        raise ResourceError(f"{where}: expected {expected}, got {packed.type_url}")
    try:
        message.ParseFromString(packed.value)
    except DecodeError as exc:
        raise ResourceError(f"{where}: cannot decode {expected}: {exc}") from exc
    return message


def type_name(packed: any_pb2.Any) -> str:
    return str(packed.type_url).rpartition("/")[2]
