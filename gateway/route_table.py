"""Route matching, sans-IO: first route whose every condition holds wins.

Routes are compiled once per snapshot into closures over precompiled
patterns, so a request pays for the conditions it tests and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import parse_qsl

from gateway.config.model import HeaderMatchConfig, QueryMatchConfig, RouteMatchConfig
from mesh.regex import compile_regex

T = TypeVar("T")

HeaderTest = Callable[[Mapping[str, str]], bool]
QueryTest = Callable[[Mapping[str, list[str]]], bool]


@dataclass(frozen=True, slots=True)
class CompiledMatch:
    path_test: Callable[[str], bool]
    methods: frozenset[str]
    header_tests: tuple[HeaderTest, ...]
    query_tests: tuple[QueryTest, ...]

    def matches(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        query: Callable[[], Mapping[str, list[str]]],
    ) -> bool:
        if self.methods and method not in self.methods:
            return False
        if not self.path_test(path):
            return False
        if not all(test(headers) for test in self.header_tests):
            return False
        if self.query_tests:
            params = query()
            return all(test(params) for test in self.query_tests)
        return True


def compile_match(match: RouteMatchConfig) -> CompiledMatch:
    return CompiledMatch(
        path_test=_path_test(match),
        methods=frozenset(m.upper() for m in match.methods),
        header_tests=tuple(_header_test(h) for h in match.headers),
        query_tests=tuple(_query_test(q) for q in match.query),
    )


def _path_test(match: RouteMatchConfig) -> Callable[[str], bool]:
    if match.prefix is not None:
        prefix = match.prefix
        return lambda path: path.startswith(prefix)
    if match.path is not None:
        exact = match.path
        return lambda path: path == exact
    assert match.regex is not None
    pattern = compile_regex(match.regex)
    # Envoy's safe_regex matches the whole path, not a substring.
    return lambda path: pattern.fullmatch(path) is not None


def _header_test(rule: HeaderMatchConfig) -> HeaderTest:
    name = rule.name.lower()
    value_test: Callable[[str], bool]
    if rule.exact is not None:
        exact = rule.exact
        value_test = lambda v: v == exact  # noqa: E731
    elif rule.prefix is not None:
        prefix = rule.prefix
        value_test = lambda v: v.startswith(prefix)  # noqa: E731
    elif rule.suffix is not None:
        suffix = rule.suffix
        value_test = lambda v: v.endswith(suffix)  # noqa: E731
    elif rule.regex is not None:
        pattern = compile_regex(rule.regex)
        value_test = lambda v: pattern.fullmatch(v) is not None  # noqa: E731
    else:
        # `present: true` or no rule: the header must be there;
        # `present: false`: it must be absent.
        want = rule.present is not False
        invert = rule.invert

        def presence(headers: Mapping[str, str]) -> bool:
            return ((name in headers) == want) != invert

        return presence
    invert = rule.invert

    def header_test(headers: Mapping[str, str]) -> bool:
        value = headers.get(name)
        # Envoy: an absent header fails the match even when inverted.
        if value is None:
            return False
        return value_test(value) != invert

    return header_test


def _query_test(rule: QueryMatchConfig) -> QueryTest:
    name = rule.name
    if rule.exact is not None:
        exact = rule.exact
        return lambda params: exact in params.get(name, ())
    want = rule.present is not False
    return lambda params: (name in params) == want


def parse_query(query_string: bytes) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        params.setdefault(key, []).append(value)
    return params


@dataclass(frozen=True, slots=True)
class RouteTable(Generic[T]):
    """Ordered (match, route) pairs of one listener."""

    entries: Sequence[tuple[CompiledMatch, T]]

    def find(
        self, method: str, path: str, headers: Mapping[str, str], query_string: bytes
    ) -> T | None:
        parsed: dict[str, list[str]] | None = None

        def query() -> Mapping[str, list[str]]:
            nonlocal parsed
            if parsed is None:
                parsed = parse_query(query_string)
            return parsed

        for match, route in self.entries:
            if match.matches(method, path, headers, query):
                return route
        return None
