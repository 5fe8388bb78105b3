"""RE2 regexes from xDS (``safe_regex``), compiled with Python's ``re``.

xDS regexes are RE2: no backtracking constructs. Python's engine accepts a
superset, so constructs RE2 refuses are rejected here first; otherwise a
resource Envoy and gRPC NACK would be accepted by meshgate. The one spelling
that differs, RE2's ``\\z`` (end of text), is rewritten to Python's ``\\Z``.
"""

from __future__ import annotations

import re

from mesh.errors import ResourceError

# Group openers RE2 does not know: lookarounds, atomic groups, conditionals,
# named backreferences.
_REFUSED_GROUPS = ("(?=", "(?!", "(?<=", "(?<!", "(?>", "(?(", "(?P=")
_QUANTIFIERS = "*+?}"


def compile_re2(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 pattern, or raise ResourceError saying why it is not RE2."""
    translated = _check_and_translate(pattern)
    try:
        return re.compile(translated)
    except re.error as exc:
        raise ResourceError(f"invalid regex {pattern!r}: {exc}") from exc


def _check_and_translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1 : i + 2]
            if not escaped:
                raise ResourceError(f"invalid regex {pattern!r}: trailing backslash")
            if escaped in "123456789" or escaped in ("g", "Z"):
                raise ResourceError(
                    f"invalid regex {pattern!r}: \\{escaped} is not supported by RE2"
                )
            out.append("\\Z" if escaped == "z" and not in_class else "\\" + escaped)
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            # A ']' right after '[' or '[^' is a literal, not the end.
            closing = i + 1 + (pattern[i + 1 : i + 2] == "^")
            if pattern[closing : closing + 1] == "]":
                out.append(pattern[i : closing + 1])
                i = closing + 1
                continue
        elif char == "(":
            for opener in _REFUSED_GROUPS:
                if pattern.startswith(opener, i):
                    raise ResourceError(
                        f"invalid regex {pattern!r}: {opener!r} is not supported by RE2"
                    )
        elif char == "+" and out and out[-1] in _QUANTIFIERS and not _escaped(out):
            raise ResourceError(
                f"invalid regex {pattern!r}: possessive quantifiers are not supported by RE2"
            )
        out.append(char)
        i += 1
    return "".join(out)


def _escaped(out: list[str]) -> bool:
    """Whether the last emitted piece was an escape (so not a quantifier)."""
    return len(out[-1]) > 1
