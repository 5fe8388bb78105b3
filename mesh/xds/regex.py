"""RE2 regexes from xDS (``safe_regex``).

xDS regexes are RE2; they are compiled by RE2 itself (:mod:`mesh.regex`), so
matching is linear in the input and a pattern Envoy and gRPC would NACK is
NACKed here too.
"""

from __future__ import annotations

from mesh.errors import ResourceError
from mesh.regex import Pattern, RegexError, compile_regex


def compile_re2(pattern: str) -> Pattern:
    """Compile an RE2 pattern, or raise ResourceError saying why it is not RE2."""
    try:
        return compile_regex(pattern)
    except RegexError as exc:
        raise ResourceError(str(exc)) from None
