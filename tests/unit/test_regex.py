"""Every configured regex is RE2: linear in the input, refused at load if not RE2."""

from __future__ import annotations

import pytest

from gateway.config.model import RouteMatchConfig
from gateway.route_table import compile_match
from mesh.errors import ResourceError
from mesh.regex import RegexError, compile_regex
from mesh.xds.regex import compile_re2

NOT_RE2 = [r"(?=x)", r"(?!x)", r"(?<=a)b", r"(a)\1", "a++", r"(?P<n>a)(?P=n)", r"\Z", "("]


@pytest.mark.parametrize("pattern", NOT_RE2)
def test_patterns_re2_cannot_compile_are_refused_everywhere(pattern: str) -> None:
    with pytest.raises(RegexError):
        compile_regex(pattern)
    with pytest.raises(ResourceError):
        compile_re2(pattern)
    with pytest.raises(ValueError, match="RE2"):
        RouteMatchConfig(regex=pattern)


def test_re2_spelling_of_end_of_text_is_accepted() -> None:
    assert compile_regex(r"/a\z").fullmatch("/a") is not None


def test_the_exponential_route_regex_of_the_issue_matches_in_linear_time() -> None:
    # With Python's backtracking engine a 26-character path held the worker
    # 2.35 s, doubling with each character; RE2 answers a 100 KB one at once.
    # The test bounds nothing but its own run (pytest's global limits).
    match = compile_match(RouteMatchConfig(regex=r"/api/(\w+/?)*/run"))
    for length in (26, 40, 100_000):
        assert not match.path_test("/api/" + "a" * length + "!")
    assert match.path_test("/api/a/b/run")
