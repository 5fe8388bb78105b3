"""JSON text to Python values, strictly: malformed text and duplicate keys are 400s.

orjson keeps the last of two equal keys without a word; protobuf's JSON
conformance (and json_format) rejects them, and a client that sends
``{"amount": 1, "amount": 1000}`` should not get whichever a parser happens to
keep. Finding them costs a count, not a second parse: in valid JSON every
``:`` outside a string separates one object member, so the members orjson
kept equal the colons outside strings exactly when no key repeats.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import orjson

from gateway.errors import BadRequest

# A JSON string (already known valid: orjson parsed the text), unrolled so
# the engine never backtracks over it.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def loads(body: bytes) -> Any:
    """The value of a JSON text; BadRequest if malformed or a key repeats."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    colons = body.count(b":")
    if colons:
        members = _members(value)
        if colons != members and _STRING.sub(b"", body).count(b":") != members:
            raise BadRequest(f"duplicate key {_first_duplicate(body)!r} in a JSON object")
    return value


def _members(value: Any) -> int:
    """Object members in a parsed value, counted without recursion."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            count += len(item)
            stack.extend(v for v in item.values() if type(v) is dict or type(v) is list)
        elif type(item) is list:
            stack.extend(v for v in item if type(v) is dict or type(v) is list)
    return count


def _first_duplicate(body: bytes) -> str:
    """The repeated key, for the message (only on the error path)."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return {}

    with contextlib.suppress(ValueError, RecursionError):
        json.loads(body, object_pairs_hook=pairs)
    return found[0] if found else "?"
