"""api_key: 401 without a key, 403 with an unknown one, keys kept as digests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from filters import FilterConfigError, build_filter
from filters.api_key import load_keys
from filters.http import HttpRequest, HttpResponse
from tests.support.awaiting import settle


class Upstream:
    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return HttpResponse(200)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    digest = hashlib.sha256(b"hashed-key").hexdigest()
    path = tmp_path / "keys.txt"
    path.write_text(f"# comment\n\nplain-key\nci=named-key\nbot=sha256:{digest}\n")
    return path


def run(
    config: dict[str, Any], headers: list[tuple[str, str]], query: bytes = b""
) -> tuple[HttpResponse, Upstream]:
    upstream = Upstream()
    handler = build_filter("api_key", config)(upstream)
    return settle(handler(HttpRequest("GET", "/", query, headers))), upstream


def test_absent_unknown_and_known_keys(keys_file: Path) -> None:
    config = {"keys_file": str(keys_file)}
    absent, _ = run(config, [])
    unknown, _ = run(config, [("x-api-key", "guess")])
    known, upstream = run(config, [("x-api-key", "plain-key")])

    assert absent.status == 401
    assert json.loads(absent.body)["message"] == "API key is missing"
    assert unknown.status == 403
    assert b"guess" not in unknown.body
    assert known.status == 200
    assert "x-api-key" not in upstream.requests[0].headers


def test_a_digest_line_accepts_the_key_it_hashes(keys_file: Path) -> None:
    assert run({"keys_file": str(keys_file)}, [("x-api-key", "hashed-key")])[0].status == 200
    digest_itself = "sha256:" + hashlib.sha256(b"hashed-key").hexdigest()
    assert run({"keys_file": str(keys_file)}, [("x-api-key", digest_itself)])[0].status == 403


def test_keys_are_held_as_digests_only(keys_file: Path) -> None:
    held = load_keys(__import__("filters.api_key", fromlist=["Config"]).Config(keys_file=keys_file))
    assert "plain-key" not in repr(held) and "named-key" not in repr(held)
    assert hashlib.sha256(b"named-key").hexdigest() in held


def test_keys_from_env_and_query_with_the_name_forwarded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_API_KEYS", "one,svc=two")
    config = {
        "keys_env": "TEST_API_KEYS",
        "from": [{"query": "api_key"}],
        "name_header": "x-api-key-name",
    }
    response, upstream = run(config, [("x-api-key-name", "forged")], query=b"api_key=two&page=1")
    assert response.status == 200
    forwarded = upstream.requests[0]
    assert forwarded.headers["x-api-key-name"] == "svc"
    assert forwarded.query_string == b"page=1"
    unnamed, upstream = run(config, [("x-api-key-name", "forged")], query=b"api_key=one")
    assert unnamed.status == 200 and "x-api-key-name" not in upstream.requests[0].headers


def test_config_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NO_SUCH_KEYS", raising=False)
    with pytest.raises(FilterConfigError, match="NO_SUCH_KEYS"):
        build_filter("api_key", {"keys_env": "NO_SUCH_KEYS"})
    with pytest.raises(FilterConfigError, match="keys_file, keys_env"):
        build_filter("api_key", {})
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(FilterConfigError, match="no API keys"):
        build_filter("api_key", {"keys_file": str(empty)})


def test_a_relative_keys_file_is_relative_to_the_config_file(keys_file: Path) -> None:
    upstream = Upstream()
    handler = build_filter("api_key", {"keys_file": keys_file.name}, base_dir=keys_file.parent)(
        upstream
    )
    request = HttpRequest("GET", "/", b"", [("x-api-key", "plain-key")])
    assert settle(handler(request)).status == 200
    with pytest.raises(FilterConfigError, match="No such file"):
        build_filter("api_key", {"keys_file": keys_file.name}, base_dir=Path("/nonexistent"))
