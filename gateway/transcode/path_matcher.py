"""Match request paths against ``google.api.http`` templates.

Semantics follow grpc-httpjson-transcoding's ``PathMatcher`` (what Envoy's
grpc_json_transcoder runs), so the same request picks the same route:

* Precedence at every segment is literal, then ``*``, then ``**``, whatever the
  registration order; the search backtracks when a branch dead-ends.
* ``**`` swallows one or more segments, or zero when it ends the template.
* A trailing ``:name`` on the last segment is a custom verb only when some
  registered template uses that verb (or ``match_unregistered_custom_verb``);
  otherwise it stays part of the segment.
* Trailing slashes are ignored; ``?...`` in the path is dropped.
* A single-segment capture is fully percent-decoded; a multi-segment capture
  (or any capture holding ``**``) is decoded per ``url_unescape_spec``.
* Registering the same method and template twice marks the route ambiguous:
  lookups of it find nothing. "The same template" means the same
  :func:`binding_key`: variable names (and the ``{name=...}`` braces) do not
  count, so ``/v1/items/{id}``, ``/v1/items/{name}`` and ``/v1/items/*`` are one
  template, while ``/v1/items/{id}:cancel`` is another. Every duplicate is
  recorded in :attr:`PathMatcherBuilder.duplicates`; with
  ``fail_registration_on_duplicate`` it also raises :class:`DuplicateRouteError`.
  The first registration stays the route's payload either way.
* An HTTP method registered as ``"*"`` matches any method. Unlike the C++
  library, the fallback keeps the custom verb, so ``"*"`` plus a verb works.

Templates are compiled into a trie keyed by segment at registration; a lookup
walks it with an explicit stack (paths may have tens of thousands of segments)
and never scans the registered templates.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gateway.transcode.path_template import (
    MULTI_WILDCARD,
    SINGLE_WILDCARD,
    PathTemplate,
    RouteTableError,
    Variable,
    parse_template,
)

T = TypeVar("T")

METHOD_WILDCARD = "*"


class UrlUnescapeSpec(enum.Enum):
    """How much of a multi-segment capture is percent-decoded."""

    ALL_CHARACTERS_EXCEPT_RESERVED = "ALL_CHARACTERS_EXCEPT_RESERVED"
    """RFC 6570 reserved characters stay encoded (the default)."""
    ALL_CHARACTERS_EXCEPT_SLASH = "ALL_CHARACTERS_EXCEPT_SLASH"
    """Everything but ``%2F`` is decoded."""
    ALL_CHARACTERS = "ALL_CHARACTERS"
    """Everything is decoded."""


_FULL = UrlUnescapeSpec.ALL_CHARACTERS


@dataclass(frozen=True, slots=True)
class MatcherOptions:
    url_unescape_spec: UrlUnescapeSpec = UrlUnescapeSpec.ALL_CHARACTERS_EXCEPT_RESERVED
    query_param_unescape_plus: bool = False
    """Decode ``+`` as a space in query values (HTML form encoding)."""
    match_unregistered_custom_verb: bool = False
    fail_registration_on_duplicate: bool = False


@dataclass(frozen=True, slots=True)
class VariableBinding:
    """A request value for a (possibly nested) request message field.

    Decoded bytes that are not UTF-8 survive as lone surrogates
    (``surrogateescape``): a string field can reject them, a bytes field can
    recover them with ``value.encode("utf-8", "surrogateescape")``.
    """

    field_path: tuple[str, ...]
    value: str


@dataclass(frozen=True, slots=True)
class PathMatch(Generic[T]):
    """A successful lookup: path variables in template order, then query parameters."""

    payload: T
    bindings: tuple[VariableBinding, ...]
    body_field_path: str


@dataclass(frozen=True, slots=True)
class BindingKey:
    """What makes two registrations the same route: the HTTP method, the
    template's segments with each variable replaced by its pattern (``*`` for a
    bare ``{name}``), and the custom verb."""

    http_method: str
    segments: tuple[str, ...]
    verb: str

    @property
    def pattern(self) -> str:
        """The normalised template, e.g. ``/v1/items/*`` for ``/v1/items/{id}``."""
        text = "/" + "/".join(self.segments)
        return f"{text}:{self.verb}" if self.verb else text

    def __str__(self) -> str:
        return f"{self.http_method} {self.pattern}"


def binding_key(http_method: str, template: str | PathTemplate) -> BindingKey:
    """The key :meth:`PathMatcherBuilder.register` treats as a duplicate when seen
    twice; raises :class:`TemplateError` for a malformed template."""
    parsed = parse_template(template) if isinstance(template, str) else template
    return BindingKey(http_method, parsed.segments, parsed.verb)


class DuplicateRouteError(RouteTableError):
    """The same HTTP method and (normalised) template were registered twice.

    ``existing_template`` is the template text of the registration that came
    first; the two have the same :func:`binding_key` but may be written
    differently (``/v1/items/{id}`` and ``/v1/items/{name}``).
    """

    def __init__(
        self, http_method: str, template: str, existing_template: str | None = None
    ) -> None:
        self.http_method = http_method
        self.template = template
        self.existing_template = template if existing_template is None else existing_template
        already = "" if self.existing_template == template else f" as {self.existing_template}"
        super().__init__(f"{http_method} {template} is already registered{already}")


@dataclass(frozen=True, slots=True)
class _Route(Generic[T]):
    payload: T
    template: str
    variables: tuple[Variable, ...]
    body_field_path: str
    system_query_params: frozenset[str]


@dataclass(slots=True)
class _Entry(Generic[T]):
    route: _Route[T]
    ambiguous: bool = False


# A route is stored under (HTTP method, custom verb) at the node its segments lead to.
_RouteKey = tuple[str, str]


@dataclass(slots=True)
class _Node(Generic[T]):
    children: dict[str, _Node[T]] = field(default_factory=dict)
    entries: dict[_RouteKey, _Entry[T]] = field(default_factory=dict)
    is_multi_wildcard: bool = False

    def entry_for(self, key: _RouteKey) -> _Entry[T] | None:
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries.get((METHOD_WILDCARD, key[1]))
        return entry


class PathMatcherBuilder(Generic[T]):
    """Collects registrations; :meth:`build` freezes them into a :class:`PathMatcher`."""

    def __init__(self, options: MatcherOptions | None = None) -> None:
        self._options = options or MatcherOptions()
        self._root: _Node[T] = _Node()
        self._custom_verbs: set[str] = set()
        self.duplicates: list[tuple[str, str]] = []
        """(method, template) of every duplicate registration, for diagnostics.

        A duplicate is a second registration with an equal :func:`binding_key`.
        """

    def register(
        self,
        http_method: str,
        template: str | PathTemplate,
        payload: T,
        body_field_path: str = "",
        system_query_params: Iterable[str] = (),
    ) -> None:
        """Add a route; raises :class:`TemplateError`, or :class:`DuplicateRouteError`
        (with ``fail_registration_on_duplicate``) when :func:`binding_key` of this
        registration equals that of an earlier one.

        A duplicate makes the route ambiguous (lookups of it find nothing) and
        never replaces the first registration's payload.
        """
        parsed = parse_template(template) if isinstance(template, str) else template
        node = self._root
        for segment in parsed.segments:
            child = node.children.get(segment)
            if child is None:
                child = _Node(is_multi_wildcard=segment == MULTI_WILDCARD)
                node.children[segment] = child
            node = child
        key = (http_method, parsed.verb)
        existing = node.entries.get(key)
        if existing is not None:
            # The trie node and the key together are the binding_key: the same
            # segments (variables already reduced to their patterns), method, verb.
            existing.ambiguous = True
            self.duplicates.append((http_method, parsed.source))
            if self._options.fail_registration_on_duplicate:
                raise DuplicateRouteError(http_method, parsed.source, existing.route.template)
            return
        node.entries[key] = _Entry(
            _Route(
                payload,
                parsed.source,
                parsed.variables,
                body_field_path,
                frozenset(system_query_params),
            )
        )
        if parsed.verb:
            self._custom_verbs.add(parsed.verb)

    def build(self) -> PathMatcher[T]:
        """Snapshot the registrations; later ``register`` calls do not affect it."""
        return PathMatcher(_copy_trie(self._root), frozenset(self._custom_verbs), self._options)


class PathMatcher(Generic[T]):
    """An immutable route table; safe to share between concurrent requests."""

    def __init__(
        self, root: _Node[T], custom_verbs: frozenset[str], options: MatcherOptions
    ) -> None:
        self._root = root
        self._custom_verbs = custom_verbs
        self._options = options

    def lookup(self, http_method: str, path: str, query: str = "") -> PathMatch[T] | None:
        """Find the route for a request; ``None`` when none (or an ambiguous one) matches.

        ``path`` is the raw, still percent-encoded request path; ``query`` the
        raw query string without the ``?``.
        """
        parts, verb = self._split_path(path)
        entry = _search(self._root, parts, (http_method, verb))
        if entry is None or entry.ambiguous:
            return None
        route = entry.route
        bindings = self._path_bindings(route.variables, parts)
        bindings.extend(self._query_bindings(query, route.system_query_params))
        return PathMatch(route.payload, tuple(bindings), route.body_field_path)

    def _split_path(self, path: str) -> tuple[list[str], str]:
        query_start = path.find("?")
        if query_start >= 0:
            path = path[:query_start]
        verb = ""
        colon = path.rfind(":")
        slash = path.rfind("/")
        if slash >= 0 and colon > slash:
            candidate = path[colon + 1 :]
            if self._options.match_unregistered_custom_verb or candidate in self._custom_verbs:
                verb = candidate
                path = path[:colon]
        parts = path[1:].split("/") if path else []
        while parts and not parts[-1]:
            parts.pop()
        return parts, verb

    def _path_bindings(
        self, variables: tuple[Variable, ...], parts: list[str]
    ) -> list[VariableBinding]:
        bindings = []
        for var in variables:
            start = _resolve(var.start_segment, parts)
            end = _resolve(var.end_segment, parts)
            multi_segment = end - start > 1 or var.has_wildcard_path
            spec = _FULL if not multi_segment else self._options.url_unescape_spec
            value = "/".join(
                url_unescape(part, spec, unescape_plus=False) for part in parts[start:end]
            )
            bindings.append(VariableBinding(var.field_path, value))
        return bindings

    def _query_bindings(self, query: str, system_params: frozenset[str]) -> list[VariableBinding]:
        bindings = []
        plus = self._options.query_param_unescape_plus
        for param in _split_items(query, "&"):
            name, equals, value = param.partition("=")
            # Parameters without a name or without '=' bind nothing.
            if not name or not equals or name in system_params:
                continue
            field_path = tuple(_split_items(name, "."))
            bindings.append(VariableBinding(field_path, url_unescape(value, _FULL, plus)))
        return bindings


def _resolve(segment: int, parts: list[str]) -> int:
    # Negative positions count from the end of the request: -1 is len(parts).
    return segment if segment >= 0 else len(parts) + segment + 1


def _search(root: _Node[T], parts: list[str], key: _RouteKey) -> _Entry[T] | None:
    """Depth-first search in precedence order; the first route reached wins.

    Entries are popped LIFO, so each node's alternatives are pushed from the
    least to the most preferred: ``**``, then ``*``, then the literal.
    """
    end = len(parts)
    pending: list[tuple[_Node[T], int]] = [(root, 0)]
    while pending:
        node, index = pending.pop()
        if index == end:
            entry = node.entry_for(key)
            if entry is None:
                # A trailing '**' may match zero segments.
                multi = node.children.get(MULTI_WILDCARD)
                if multi is not None:
                    entry = multi.entry_for(key)
            if entry is not None:
                return entry
            continue
        following = index + 1
        if node.is_multi_wildcard:
            # Only literals follow '**': stay in it for one more segment.
            pending.append((node, following))
        else:
            for wildcard in (MULTI_WILDCARD, SINGLE_WILDCARD):
                child = node.children.get(wildcard)
                if child is not None:
                    pending.append((child, following))
        literal = node.children.get(parts[index])
        if literal is not None:
            pending.append((literal, following))
    return None


def _copy_trie(root: _Node[T]) -> _Node[T]:
    copy: _Node[T] = _Node(is_multi_wildcard=root.is_multi_wildcard)
    pending = [(root, copy)]
    while pending:
        source, target = pending.pop()
        target.entries = {key: _Entry(e.route, e.ambiguous) for key, e in source.entries.items()}
        for segment, child in source.children.items():
            twin: _Node[T] = _Node(is_multi_wildcard=child.is_multi_wildcard)
            target.children[segment] = twin
            pending.append((child, twin))
    return copy


def _split_items(text: str, separator: str) -> list[str]:
    # Splits as C++ std::getline does: no item after a trailing separator.
    items = text.split(separator)
    if not items[-1]:
        items.pop()
    return items


_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
# RFC 6570 reserved characters.
_RESERVED = frozenset(b"!#$&'()*+,/:;=?@[]")
_SLASH = ord("/")


def url_unescape(text: str, spec: UrlUnescapeSpec, unescape_plus: bool) -> str:
    """Decode ``%XX`` escapes (and ``+`` as space when asked), keeping what ``spec`` keeps."""
    if "%" not in text and not (unescape_plus and "+" in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    chunks = raw.split(b"%")
    out = bytearray(_plus_to_space(chunks[0], unescape_plus))
    for chunk in chunks[1:]:
        rest = chunk
        if len(chunk) >= 2 and chunk[0] in _HEX_DIGITS and chunk[1] in _HEX_DIGITS:
            byte = int(chunk[:2], 16)
            if _decodes(byte, spec):
                out.append(byte)
                rest = chunk[2:]
            else:
                out.append(0x25)
        else:
            out.append(0x25)
        out += _plus_to_space(rest, unescape_plus)
    return out.decode("utf-8", "surrogateescape")


def _decodes(byte: int, spec: UrlUnescapeSpec) -> bool:
    if spec is UrlUnescapeSpec.ALL_CHARACTERS_EXCEPT_RESERVED:
        return byte not in _RESERVED
    if spec is UrlUnescapeSpec.ALL_CHARACTERS_EXCEPT_SLASH:
        return byte != _SLASH
    return True


def _plus_to_space(chunk: bytes, unescape_plus: bool) -> bytes:
    return chunk.replace(b"+", b" ") if unescape_plus else chunk
