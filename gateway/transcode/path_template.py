"""Parser for ``google.api.http`` path templates.

The grammar (google/api/http.proto)::

    Template  = "/" | "/" Segments [ Verb ] ;
    Segments  = Segment { "/" Segment } ;
    Segment   = "*" | "**" | LITERAL | Variable ;
    Variable  = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb      = ":" LITERAL ;

The accepted language follows grpc-httpjson-transcoding (the library inside
Envoy's grpc_json_transcoder), so a template Envoy accepts parses the same way
here: a LITERAL is any run of characters other than ``/``, ``:`` and ``}``,
a segment starting with ``*`` is a wildcard, and only literals may follow a
``**``. One deliberate difference: IDENT must be a protobuf identifier
(``[A-Za-z_][A-Za-z0-9_]*``). The C++ parser takes any run of characters there,
which can never name a field, so rejecting it here gives an earlier, clearer
error for a template that would fail later anyway. And a fix: the C++ library
keeps absolute positions for a capture placed after a ``**`` (``/**/{x=a}``)
and so binds the wrong segment; here such positions count from the path's end.

Errors, for building a route table from templates::

    RouteTableError            (ValueError) a route cannot be registered
    ├── TemplateError          the template text is malformed
    └── DuplicateRouteError    (path_matcher) the same method and template twice
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

SINGLE_WILDCARD = "*"
"""Segment that matches exactly one path segment (also what ``{var}`` expands to)."""

MULTI_WILDCARD = "**"
"""Segment that matches any number of path segments; only literals may follow it."""

_LITERAL_STOP = frozenset("/:}")


class RouteTableError(ValueError):
    """A route cannot be registered in a path matcher."""


class TemplateError(RouteTableError):
    """A path template is malformed; says what is wrong and at which offset."""

    def __init__(self, template: str, position: int, reason: str) -> None:
        self.template = template
        self.position = position
        self.reason = reason
        super().__init__(f"invalid path template {template!r} at offset {position}: {reason}")


@dataclass(frozen=True, slots=True)
class Variable:
    """A ``{field.path=...}`` capture.

    ``[start_segment, end_segment)`` is the range of template segments it
    covers. When the capture contains ``**`` the request path decides how many
    segments that is, so ``end_segment`` is negative and counts from the end of
    the request's segments: -1 is the end, -2 one segment before it. A capture
    that comes after a ``**`` has both ends negative that way.
    """

    field_path: tuple[str, ...]
    start_segment: int
    end_segment: int
    has_wildcard_path: bool


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A parsed template: ``*`` / ``**`` wildcards among literal segments."""

    source: str
    segments: tuple[str, ...]
    verb: str
    variables: tuple[Variable, ...]


def parse_template(template: str) -> PathTemplate:
    """Parse ``template`` or raise :class:`TemplateError`."""
    if template == "/":
        return PathTemplate(template, (), "", ())
    return _Parser(template).parse()


@dataclass(slots=True)
class _OpenVariable:
    field_path: tuple[str, ...]
    start_segment: int
    has_wildcard_path: bool = False


class _Parser:
    """Recursive descent over the template text, one character of lookahead."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._segments: list[str] = []
        self._offsets: list[int] = []  # where each segment starts, for error messages
        self._variables: list[Variable] = []
        self._open: _OpenVariable | None = None

    def parse(self) -> PathTemplate:
        self._expect("/", "a template must start with '/'")
        self._parse_segments()
        verb = ""
        if self._peek() == ":":
            self._pos += 1
            verb = self._parse_literal("a custom verb after ':'")
        if self._pos < len(self._text):
            self._fail(f"unexpected {self._text[self._pos]!r}")
        self._check_wildcard_suffix()
        return PathTemplate(
            self._text, tuple(self._segments), verb, tuple(self._finish_variables())
        )

    def _parse_segments(self) -> None:
        self._parse_segment()
        while self._peek() == "/":
            self._pos += 1
            self._parse_segment()

    def _parse_segment(self) -> None:
        start = self._pos
        char = self._peek()
        if char == "{":
            self._parse_variable()
            return
        if char == "*":
            self._pos += 1
            segment = SINGLE_WILDCARD
            if self._peek() == "*":
                self._pos += 1
                segment = MULTI_WILDCARD
                if self._open is not None:
                    self._open.has_wildcard_path = True
        else:
            segment = self._parse_literal("a path segment")
        self._segments.append(segment)
        self._offsets.append(start)

    def _parse_variable(self) -> None:
        if self._open is not None:
            self._fail("variables cannot be nested")
        self._pos += 1
        self._open = _OpenVariable(self._parse_field_path(), len(self._segments))
        if self._peek() not in ("=", "}"):
            self._fail("expected '.', '=' or '}' after a field name")
        if self._peek() == "=":
            self._pos += 1
            self._parse_segments()
        else:
            self._offsets.append(self._pos)
            self._segments.append(SINGLE_WILDCARD)
        self._expect("}", "expected '}' to close the variable")
        opened = self._open
        self._open = None
        self._variables.append(
            Variable(
                opened.field_path,
                opened.start_segment,
                len(self._segments),
                opened.has_wildcard_path,
            )
        )

    def _parse_field_path(self) -> tuple[str, ...]:
        names = [self._parse_identifier()]
        while self._peek() == ".":
            self._pos += 1
            names.append(self._parse_identifier())
        return tuple(names)

    def _parse_identifier(self) -> str:
        start = self._pos
        text = self._text
        if start < len(text) and _is_ident_start(text[start]):
            self._pos += 1
            while self._pos < len(text) and _is_ident_char(text[self._pos]):
                self._pos += 1
        if self._pos == start:
            found = repr(text[start]) if start < len(text) else "the end"
            self._fail(f"expected a field name, found {found}")
        return text[start : self._pos]

    def _parse_literal(self, what: str) -> str:
        start = self._pos
        text = self._text
        while self._pos < len(text) and text[self._pos] not in _LITERAL_STOP:
            self._pos += 1
        if self._pos == start:
            found = repr(text[start]) if start < len(text) else "the end"
            self._fail(f"expected {what}, found {found}")
        return text[start : self._pos]

    def _check_wildcard_suffix(self) -> None:
        seen_multi = False
        for index, segment in enumerate(self._segments):
            if seen_multi and segment in (SINGLE_WILDCARD, MULTI_WILDCARD):
                raise TemplateError(
                    self._text,
                    self._offsets[index],
                    f"only literal segments may follow '**' (segment {index} is {segment!r})",
                )
            seen_multi = seen_multi or segment == MULTI_WILDCARD

    def _finish_variables(self) -> list[Variable]:
        # Past a '**' the request decides how many segments came before, so
        # positions there are kept relative to the end of the request's
        # segments; only literals follow '**', which makes them fixed.
        total = len(self._segments)
        multi_at = (
            self._segments.index(MULTI_WILDCARD) if MULTI_WILDCARD in self._segments else total
        )
        finished = []
        for var in self._variables:
            start, end = var.start_segment, var.end_segment
            if var.has_wildcard_path:
                end -= total + 1
            elif start > multi_at:
                start -= total + 1
                end -= total + 1
            finished.append(Variable(var.field_path, start, end, var.has_wildcard_path))
        return finished

    def _peek(self) -> str:
        return self._text[self._pos] if self._pos < len(self._text) else ""

    def _expect(self, char: str, reason: str) -> None:
        if self._peek() != char:
            self._fail(reason)
        self._pos += 1

    def _fail(self, reason: str) -> NoReturn:
        raise TemplateError(self._text, self._pos, reason)


def _is_ident_start(char: str) -> bool:
    return char.isascii() and (char.isalpha() or char == "_")


def _is_ident_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")
