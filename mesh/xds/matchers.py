"""String and header matchers of RDS routes, translated and evaluated sans-IO.

Header semantics follow gRFC A28 as gRPC applies them to an RPC's metadata:
several values of one header are joined with ',' before matching; headers
ending in ``-bin`` never match (their values are bytes); ``content-type`` is
seen as ``application/grpc`` when the caller did not send one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import string_pb2

from mesh.errors import ResourceError
from mesh.regex import Pattern
from mesh.xds.regex import compile_re2


class StringMatchKind(Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    CONTAINS = "contains"
    REGEX = "safe_regex"


@dataclass(frozen=True, slots=True)
class StringMatcher:
    kind: StringMatchKind
    value: str = ""
    regex: Pattern | None = None
    ignore_case: bool = False

    def matches(self, text: str) -> bool:
        if self.kind is StringMatchKind.REGEX:
            assert self.regex is not None
            return self.regex.fullmatch(text) is not None
        value = self.value
        if self.ignore_case:
            text, value = text.lower(), value.lower()
        if self.kind is StringMatchKind.EXACT:
            return text == value
        if self.kind is StringMatchKind.PREFIX:
            return text.startswith(value)
        if self.kind is StringMatchKind.SUFFIX:
            return text.endswith(value)
        return value in text


class HeaderMatchKind(Enum):
    STRING = "string"
    PRESENT = "present"
    RANGE = "range"


@dataclass(frozen=True, slots=True)
class HeaderMatcher:
    name: str
    kind: HeaderMatchKind
    string: StringMatcher | None = None
    present: bool = True
    range_start: int = 0
    range_end: int = 0
    invert: bool = False

    def matches(self, headers: Mapping[str, str | Sequence[str]]) -> bool:
        return self._raw_match(header_value(headers, self.name)) != self.invert

    def _raw_match(self, value: str | None) -> bool:
        if self.kind is HeaderMatchKind.PRESENT:
            return (value is not None) == self.present
        if value is None:
            return False
        if self.kind is HeaderMatchKind.RANGE:
            try:
                number = int(value)
            except ValueError:
                return False
            return self.range_start <= number < self.range_end
        assert self.string is not None
        return self.string.matches(value)


def header_value(headers: Mapping[str, str | Sequence[str]], name: str) -> str | None:
    """The value gRPC matches against: multiple values joined with ','."""
    if name.endswith("-bin"):
        return None
    value = headers.get(name)
    if value is None:
        if name == "content-type":
            return "application/grpc"
        return None
    if isinstance(value, str):
        return value
    return ",".join(value)


def string_matcher(proto: string_pb2.StringMatcher, where: str) -> StringMatcher:
    kind = proto.WhichOneof("match_pattern")
    if kind == "safe_regex":
        return StringMatcher(StringMatchKind.REGEX, regex=_regex(proto.safe_regex.regex, where))
    if kind in ("exact", "prefix", "suffix", "contains"):
        value = getattr(proto, kind)
        if kind != "exact" and not value:
            raise ResourceError(f"{where}: empty {kind} string matcher")
        return StringMatcher(StringMatchKind(kind), value=value, ignore_case=proto.ignore_case)
    raise ResourceError(f"{where}: unsupported string matcher {kind!r}")


def header_matcher(proto: rc.HeaderMatcher, where: str) -> HeaderMatcher:
    where = f"{where} header {proto.name!r}"
    if proto.name.startswith(":"):
        # gRPC sees no pseudo-headers; Envoy-only matchers would never match.
        raise ResourceError(f"{where}: pseudo-header matchers are not supported")
    kind = proto.WhichOneof("header_match_specifier")
    invert = proto.invert_match
    name = proto.name.lower()
    if kind == "present_match":
        return HeaderMatcher(
            name, HeaderMatchKind.PRESENT, present=proto.present_match, invert=invert
        )
    if kind == "range_match":
        start, end = proto.range_match.start, proto.range_match.end
        if start > end:
            raise ResourceError(f"{where}: range start {start} is after end {end}")
        return HeaderMatcher(
            name, HeaderMatchKind.RANGE, range_start=start, range_end=end, invert=invert
        )
    if kind == "string_match":
        return HeaderMatcher(
            name,
            HeaderMatchKind.STRING,
            string=string_matcher(proto.string_match, where),
            invert=invert,
        )
    legacy = {
        "exact_match": StringMatchKind.EXACT,
        "prefix_match": StringMatchKind.PREFIX,
        "suffix_match": StringMatchKind.SUFFIX,
        "contains_match": StringMatchKind.CONTAINS,
    }
    if kind in legacy:
        matcher = StringMatcher(legacy[kind], value=getattr(proto, kind))
        return HeaderMatcher(name, HeaderMatchKind.STRING, string=matcher, invert=invert)
    if kind == "safe_regex_match":
        matcher = StringMatcher(
            StringMatchKind.REGEX, regex=_regex(proto.safe_regex_match.regex, where)
        )
        return HeaderMatcher(name, HeaderMatchKind.STRING, string=matcher, invert=invert)
    if kind is None:
        # No specifier at all: Envoy treats it as "present".
        return HeaderMatcher(name, HeaderMatchKind.PRESENT, invert=invert)
    raise ResourceError(f"{where}: unsupported header matcher {kind!r}")


def _regex(pattern: str, where: str) -> Pattern:
    try:
        return compile_re2(pattern)
    except ResourceError as exc:
        raise ResourceError(f"{where}: {exc.problem}") from exc
