"""What a contestant answers, for the "same responses" checks of the bench."""

from __future__ import annotations

import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.measure import body_file

# Status, content type and the body's JSON, parsed: grpc-go orders map
# entries at random, so the bytes may differ where the message does not.
Answer = tuple[int, str | None, Any]


def answer(url: str, body: bytes) -> Answer:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers.get("content-type"), orjson.loads(response.read())


def answers(url: str, bodies: Path, payloads: Sequence[str]) -> dict[str, Answer]:
    """One JSON request per payload to ``url``."""
    return {
        payload: answer(url, body_file(bodies, payload, False).read_bytes()) for payload in payloads
    }


def same_answers(urls: Sequence[str], bodies: Path, payloads: Sequence[str]) -> dict[str, bool]:
    """Per payload: do all URLs answer with the same status, content type and JSON?"""
    seen = [answers(url, bodies, payloads) for url in urls]
    return {payload: all(s[payload] == seen[0][payload] for s in seen) for payload in payloads}
