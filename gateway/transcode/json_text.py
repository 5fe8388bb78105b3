"""JSON text to Python values, strictly: malformed text and duplicate keys are 400s.

orjson keeps the last of two equal keys without a word; protobuf's JSON
conformance (and json_format) rejects them, and a client that sends
``{"amount": 1, "amount": 1000}`` should not get whichever a parser happens to
keep. Finding them costs one serialization in C, not a second parse. In the
text, every ``:`` either separates an object member or sits in a string, as a
literal ``:`` or the escape ``\\u003a``; orjson writes back every member and
every string colon as a literal ``:``. So

    colons in the text + \\u003a escapes  >=  colons in orjson.dumps(value)

with equality exactly when no key repeats: a dropped duplicate takes its
member, and everything in its value, out of the right side only.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from gateway.errors import BadRequest


def loads(body: bytes) -> Any:
    """The value of a JSON text; BadRequest if malformed or a key repeats."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    colons = body.count(b":")
    if colons:
        escaped = body.count(b"\\u003a") + body.count(b"\\u003A")
        try:
            written = orjson.dumps(value).count(b":")
        except TypeError:
            written = -1  # nested deeper than orjson writes (it reads deeper)
        if colons + escaped != written:
            # A repeated key, or an escaped backslash before "u003a" counted
            # as an escape: only a parse that sees every key tells which.
            duplicate = _first_duplicate(body)
            if duplicate is not None:
                raise BadRequest(f"duplicate key {duplicate!r} in a JSON object")
    return value


def _first_duplicate(body: bytes) -> str | None:
    """The first repeated key, if any (the slow, exact path)."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return {}

    try:
        json.loads(body, object_pairs_hook=pairs)
    except RecursionError:
        # Deeper than Python's parser goes (orjson went deeper): refuse
        # rather than accept unchecked.
        return found[0] if found else "?"
    return found[0] if found else None
