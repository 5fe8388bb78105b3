"""W3C Trace Context (``traceparent``, ``tracestate``), sans-IO.

What the gateway reads from a request and writes to each upstream attempt,
with no I/O and no OpenTelemetry import, so propagation works without the
``otel`` extra and the rules are tested alone.

``traceparent`` (W3C Trace Context, section 3.2)::

    00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01
    version-trace_id (32 hex)-parent_id (16 hex)-trace_flags (2 hex)

Lower-case hex only; an all-zero trace id or parent id is invalid, and so is
version ``ff``. Version 00 is exactly 55 characters. A higher version is read
as far as version 00 goes, provided the next character (if any) is a dash, so
a future format that only appends fields is still continued; what is sent on
is always version 00.

``tracestate`` is carried on unchanged when the ``traceparent`` beside it is
valid (a vendor list the gateway has no part in), within the spec's bounds:
at most 32 members, and past 512 characters members are dropped, first those
longer than 128 characters, then from the right (section 3.3.1.5).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

SAMPLED = 0x01
# Trace Context Level 2: the trace id's right 7 bytes are random. Kept when a
# trace is continued; unknown to Level 1 peers, which ignore it.
RANDOM_TRACE_ID = 0x02

VERSION_00_LENGTH = 55
MAX_TRACESTATE_MEMBERS = 32
TRACESTATE_TRUNCATE_AT = 512
TRACESTATE_LONG_MEMBER = 128
# A header this long is not looked at: nothing valid is anywhere near it.
MAX_HEADER_CHARS = 8192

_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16
# Section 3.3.1.3: key = simple-key / multi-tenant-key, value = printable ASCII
# without "," and "=", not ending in a space.
_TRACESTATE_MEMBER = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A valid ``traceparent``: the caller's trace, span and flags."""

    trace_id: str  # 32 lower-case hex digits, not all zero
    span_id: str  # 16 lower-case hex digits, not all zero: the caller's span
    flags: int

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)


# version-trace_id-parent_id-flags, each field lower-case hex of a fixed length.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def parse_traceparent(value: str) -> TraceParent | None:
    """The trace context in a ``traceparent`` value, or None if it is invalid."""
    if len(value) > MAX_HEADER_CHARS:
        return None
    found = _TRACEPARENT.match(value)
    if found is None:
        return None
    version, trace_id, span_id, flags = found.groups()
    # Version 00 is exactly this long; a future one may append fields, each after a dash.
    if len(value) != VERSION_00_LENGTH and (version == "00" or value[VERSION_00_LENGTH] != "-"):
        return None
    if version == "ff" or trace_id == _ZERO_TRACE_ID or span_id == _ZERO_SPAN_ID:
        return None
    return TraceParent(trace_id, span_id, int(flags, 16))


def format_traceparent(trace_id: str, span_id: str, flags: int) -> str:
    """A version 00 ``traceparent``."""
    return f"00-{trace_id}-{span_id}-{flags:02x}"


def parse_tracestate(values: Iterable[str]) -> str:
    """Every ``tracestate`` header as one value, bounded; "" if any member is invalid.

    Several headers are one list joined by commas (RFC 9110 5.3); empty
    members (``a=1,,b=2``) are allowed and dropped.
    """
    members: list[str] = []
    for value in values:
        if len(value) > MAX_HEADER_CHARS:
            return ""
        for member in value.split(","):
            member = member.strip(" \t")
            if not member:
                continue
            if not _TRACESTATE_MEMBER.fullmatch(member):
                return ""
            members.append(member)
            if len(members) > MAX_TRACESTATE_MEMBERS:
                return ""
    return ",".join(_truncated(members))


def _truncated(members: list[str]) -> list[str]:
    def length(kept: list[str]) -> int:
        return sum(len(m) for m in kept) + max(len(kept) - 1, 0)

    if length(members) <= TRACESTATE_TRUNCATE_AT:
        return members
    kept = list(members)
    for long_member in [m for m in members if len(m) > TRACESTATE_LONG_MEMBER]:
        kept.remove(long_member)
        if length(kept) <= TRACESTATE_TRUNCATE_AT:
            return kept
    while kept and length(kept) > TRACESTATE_TRUNCATE_AT:
        kept.pop()
    return kept


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a request brought: its ``traceparent`` (None: absent or invalid)
    and its ``tracestate`` ("" unless the ``traceparent`` is valid)."""

    parent: TraceParent | None
    tracestate: str = ""


NO_PARENT = Incoming(None)


def incoming(headers: Iterable[tuple[str, str]]) -> Incoming:
    """The trace context of a request's headers (lower-case names).

    Two ``traceparent`` headers cannot both be the caller's span: the trace is
    started anew, as for an invalid one.
    """
    parents: list[str] = []
    states: list[str] = []
    for name, value in headers:
        if name == TRACEPARENT:
            parents.append(value)
        elif name == TRACESTATE:
            states.append(value)
    if len(parents) != 1:
        return NO_PARENT
    parent = parse_traceparent(parents[0].strip(" \t"))
    if parent is None:
        return NO_PARENT
    return Incoming(parent, parse_tracestate(states) if states else "")


def new_trace_id(rng: random.Random) -> str:
    while True:
        value = rng.getrandbits(128)
        if value:
            return f"{value:032x}"


def new_span_id(rng: random.Random) -> str:
    while True:
        value = rng.getrandbits(64)
        if value:
            return f"{value:016x}"


def ratio_bound(ratio: float) -> int:
    """The trace-id bound under which a new trace is sampled at ``ratio``."""
    return round(max(0.0, min(ratio, 1.0)) * (1 << 64))


def sampled_by_ratio(trace_id: str, bound: int) -> bool:
    """OpenTelemetry's TraceIdRatioBased rule: the trace id's low 64 bits under
    the bound, so every participant using the same ratio agrees on a trace."""
    return int(trace_id[16:], 16) < bound
