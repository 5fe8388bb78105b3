from __future__ import annotations

from typing import Any

import pytest

from gateway.config import RouteMatchConfig
from gateway.route_table import RouteTable, compile_match


def table(*matches: dict[str, Any]) -> RouteTable[int]:
    return RouteTable(
        tuple((compile_match(RouteMatchConfig.model_validate(m)), i) for i, m in enumerate(matches))
    )


def find(
    t: RouteTable[int],
    path: str = "/",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    query: bytes = b"",
) -> int | None:
    return t.find(method, path, headers or {}, query)


def test_first_match_wins() -> None:
    t = table({"prefix": "/v1/"}, {"prefix": "/"})
    assert find(t, "/v1/x") == 0
    assert find(t, "/v2/x") == 1


def test_path_is_exact_and_regex_is_whole_path() -> None:
    t = table({"path": "/a"}, {"regex": "/b[0-9]+"})
    assert find(t, "/a") == 0
    assert find(t, "/a/") is None
    assert find(t, "/b12") == 1
    assert find(t, "/b12/x") is None
    assert find(t, "/xb12") is None


def test_methods() -> None:
    t = table({"prefix": "/", "methods": ["post", "PUT"]})
    assert find(t, method="POST") == 0
    assert find(t, method="PUT") == 0
    assert find(t, method="GET") is None


@pytest.mark.parametrize(
    ("rule", "headers", "expected"),
    [
        ({"name": "X-Env", "exact": "prod"}, {"x-env": "prod"}, True),
        ({"name": "x-env", "exact": "prod"}, {"x-env": "dev"}, False),
        ({"name": "x-env", "exact": "prod"}, {}, False),
        ({"name": "x-env", "prefix": "pr"}, {"x-env": "prod"}, True),
        ({"name": "x-env", "suffix": "od"}, {"x-env": "prod"}, True),
        ({"name": "x-env", "regex": "p.*d"}, {"x-env": "prod"}, True),
        ({"name": "x-env", "regex": "p.*"}, {"x-env": "xprod"}, False),
        ({"name": "x-env", "present": True}, {"x-env": ""}, True),
        ({"name": "x-env"}, {}, False),
        ({"name": "x-env", "present": False}, {}, True),
        ({"name": "x-env", "present": False}, {"x-env": "1"}, False),
        ({"name": "x-env", "exact": "prod", "invert": True}, {"x-env": "dev"}, True),
        ({"name": "x-env", "exact": "prod", "invert": True}, {"x-env": "prod"}, False),
        # Envoy: an absent header fails a value match even when inverted.
        ({"name": "x-env", "exact": "prod", "invert": True}, {}, False),
        ({"name": "x-env", "present": True, "invert": True}, {}, True),
    ],
)
def test_header_matchers(rule: dict[str, Any], headers: dict[str, str], expected: bool) -> None:
    t = table({"prefix": "/", "headers": [rule]})
    assert (find(t, headers=headers) == 0) is expected


@pytest.mark.parametrize(
    ("rule", "query", "expected"),
    [
        ({"name": "debug", "exact": "1"}, b"debug=1", True),
        ({"name": "debug", "exact": "1"}, b"debug=0&debug=1", True),
        ({"name": "debug", "exact": "1"}, b"debug=2", False),
        ({"name": "debug", "present": True}, b"debug", True),
        ({"name": "debug", "present": True}, b"other=1", False),
        ({"name": "debug", "present": False}, b"", True),
        ({"name": "q", "exact": "a b"}, b"q=a+b", True),
    ],
)
def test_query_matchers(rule: dict[str, Any], query: bytes, expected: bool) -> None:
    t = table({"prefix": "/", "query": [rule]})
    assert (find(t, query=query) == 0) is expected


def test_all_conditions_must_hold() -> None:
    t = table(
        {
            "prefix": "/api",
            "methods": ["GET"],
            "headers": [{"name": "x-a", "exact": "1"}],
            "query": [{"name": "v"}],
        }
    )
    assert find(t, "/api", "GET", {"x-a": "1"}, b"v=2") == 0
    assert find(t, "/api", "GET", {"x-a": "1"}, b"") is None
    assert find(t, "/api", "GET", {}, b"v=2") is None
