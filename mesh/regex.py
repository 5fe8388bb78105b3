"""Linear-time regexes (RE2) for every pattern that comes from configuration.

Envoy and gRPC compile ``safe_regex`` with RE2, which runs in time linear in
the input; Python's ``re`` backtracks, so ``/api/(\\w+/?)*/run`` against a
26-character path held a worker for seconds. Every regex from the YAML and
from xDS is compiled here, and a pattern RE2 cannot compile (lookarounds,
backreferences, possessive quantifiers...) is refused when the config loads,
as Envoy refuses it.
"""

from __future__ import annotations

from typing import Protocol

import re2

# RE2 prints every refused pattern to stderr through absl by default; the
# caller reports the error itself, with the place in the config.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


class RegexError(ValueError):
    """The pattern is not one RE2 accepts."""


class Match(Protocol):
    def group(self, index: int = 0) -> str | None: ...


class Pattern(Protocol):
    """The part of a compiled pattern meshgate uses (re and re2 alike)."""

    @property
    def pattern(self) -> str: ...

    def fullmatch(self, text: str) -> Match | None: ...

    def search(self, text: str) -> Match | None: ...


def compile_regex(pattern: str) -> Pattern:
    """Compile with RE2 semantics, or raise RegexError saying why not."""
    try:
        compiled: Pattern = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(f"invalid regex {pattern!r}: {reason} (RE2 syntax)") from None
    return compiled
