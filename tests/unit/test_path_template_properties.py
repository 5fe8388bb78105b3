"""Property tests: templates the parser accepts match the paths they describe.

A template is generated as a small syntax tree, rendered to text, parsed and
registered; a request path is then generated from the same tree, with known
raw (percent-encoded) and decoded values for every wildcard, and the lookup
must bind those values back to their variables.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.transcode.path_matcher import MatcherOptions, PathMatcherBuilder, UrlUnescapeSpec
from gateway.transcode.path_template import parse_template

RESERVED = "!#$&'()*+,/:;=?@[]"
SPEC_KEEPS = {
    UrlUnescapeSpec.ALL_CHARACTERS_EXCEPT_RESERVED: set(RESERVED),
    UrlUnescapeSpec.ALL_CHARACTERS_EXCEPT_SLASH: {"/"},
    UrlUnescapeSpec.ALL_CHARACTERS: set(),
}


@dataclass(frozen=True)
class Piece:
    """One unit of a request segment: its raw text and what it decodes to."""

    raw: str
    decoded: str
    escaped: bool

    def partially_decoded(self, spec: UrlUnescapeSpec) -> str:
        if self.escaped and self.decoded in SPEC_KEEPS[spec]:
            return self.raw
        return self.decoded


def _escape(char: str) -> Piece:
    raw = "".join(f"%{byte:02X}" for byte in char.encode())
    return Piece(raw, char, escaped=len(raw) == 3)


plain_chars = string.ascii_letters + string.digits + "-._~!$&'()*+,;=@:" + "é"
escapable_chars = string.ascii_letters + string.digits + RESERVED + " %é"
pieces = st.one_of(
    st.sampled_from(plain_chars).map(lambda c: Piece(c, c, escaped=False)),
    st.sampled_from(escapable_chars).map(_escape),
)
segment_values = st.lists(pieces, min_size=1, max_size=5).map(tuple)

literal_text = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9\-._~!$&'()*+,;=@]{0,5}", fullmatch=True)
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,4}", fullmatch=True)
field_paths = st.lists(identifiers, min_size=1, max_size=3).map(tuple)


@dataclass(frozen=True)
class Var:
    field_path: tuple[str, ...]
    inner: tuple[str, ...] | None  # None renders as {field_path}, which means "*"


@st.composite
def template_items(draw: st.DrawFn) -> tuple[object, ...]:
    """A template as items: literal text, "*", "**" or a Var; only literals after "**"."""
    items: list[object] = []
    seen_multi = False

    def segment(allow_wildcards: bool) -> str:
        nonlocal seen_multi
        kinds = ["literal", "*", "**"] if allow_wildcards and not seen_multi else ["literal"]
        kind = draw(st.sampled_from(kinds))
        if kind == "literal":
            return draw(literal_text)
        seen_multi = seen_multi or kind == "**"
        return kind

    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            if not seen_multi and draw(st.booleans()):
                items.append(Var(draw(field_paths), None))
            else:
                count = draw(st.integers(1, 3))
                inner = tuple(segment(allow_wildcards=True) for _ in range(count))
                items.append(Var(draw(field_paths), inner))
        else:
            items.append(segment(allow_wildcards=True))
    return tuple(items)


def _render(items: tuple[object, ...], verb: str) -> str:
    def one(item: object) -> str:
        if isinstance(item, Var):
            name = ".".join(item.field_path)
            return (
                "{" + name + "}"
                if item.inner is None
                else "{" + name + "=" + "/".join(item.inner) + "}"
            )
        return str(item)

    return "/" + "/".join(one(item) for item in items) + (":" + verb if verb else "")


def _flat_segments(items: tuple[object, ...]) -> list[str]:
    flat: list[str] = []
    for item in items:
        if isinstance(item, Var):
            flat.extend(item.inner or ("*",))
        else:
            flat.append(str(item))
    return flat


@settings(max_examples=150, deadline=None)
@given(items=template_items(), verb=st.one_of(st.just(""), literal_text))
def test_parser_recovers_the_structure_it_was_given(items: tuple[object, ...], verb: str) -> None:
    parsed = parse_template(_render(items, verb))
    flat = _flat_segments(items)
    assert list(parsed.segments) == flat
    assert parsed.verb == verb
    # Positions count from the end of the path (-1 = end) once a '**' is involved.
    from_end = len(flat) + 1
    expected = []
    start = 0
    for item in items:
        if isinstance(item, Var):
            inner = item.inner or ("*",)
            end = start + len(inner)
            multi = "**" in inner
            if "**" in flat[:start]:
                expected.append((item.field_path, start - from_end, end - from_end, multi))
            else:
                expected.append((item.field_path, start, end - from_end if multi else end, multi))
            start = end
        else:
            start += 1
    actual = [
        (v.field_path, v.start_segment, v.end_segment, v.has_wildcard_path)
        for v in parsed.variables
    ]
    assert actual == expected


@st.composite
def matching_requests(
    draw: st.DrawFn,
) -> tuple[str, str, list[tuple[tuple[str, ...], str]], UrlUnescapeSpec]:
    """A template, a path it must match, and the bindings that match must produce."""
    items = draw(template_items())
    verb = draw(st.one_of(st.just(""), literal_text))
    spec = draw(st.sampled_from(list(UrlUnescapeSpec)))
    flat = _flat_segments(items)
    last_is_multi = flat[-1] == "**"

    # Request segments per template segment: each a list of piece tuples.
    request: list[list[tuple[Piece, ...]]] = []
    for index, segment in enumerate(flat):
        if segment == "*":
            request.append([draw(segment_values)])
        elif segment == "**":
            fewest = 0 if index == len(flat) - 1 and last_is_multi else 1
            request.append(draw(st.lists(segment_values, min_size=fewest, max_size=3)))
        else:
            request.append([tuple(Piece(c, c, escaped=False) for c in segment)])

    expected: list[tuple[tuple[str, ...], str]] = []
    position = 0
    for item in items:
        width = 1 if not isinstance(item, Var) or item.inner is None else len(item.inner)
        if isinstance(item, Var):
            covered = [seg for group in request[position : position + width] for seg in group]
            multi = len(covered) > 1 or "**" in flat[position : position + width]
            value = "/".join(
                "".join(p.partially_decoded(spec) if multi else p.decoded for p in seg)
                for seg in covered
            )
            expected.append((item.field_path, value))
        position += width

    raw_segments = ["".join(p.raw for p in seg) for group in request for seg in group]
    path = "/" + "/".join(raw_segments) + (":" + verb if verb else "")
    return _render(items, verb), path, expected, spec


@settings(max_examples=150, deadline=None)
@given(case=matching_requests())
def test_generated_paths_match_and_bind_their_values(
    case: tuple[str, str, list[tuple[tuple[str, ...], str]], UrlUnescapeSpec],
) -> None:
    template, path, expected, spec = case
    builder: PathMatcherBuilder[str] = PathMatcherBuilder(MatcherOptions(url_unescape_spec=spec))
    builder.register("GET", template, "route")
    match = builder.build().lookup("GET", path)
    assert match is not None, (template, path)
    assert [(b.field_path, b.value) for b in match.bindings] == expected


query_names = st.lists(identifiers, min_size=1, max_size=3).map(".".join)


@settings(max_examples=75, deadline=None)
@given(
    params=st.lists(st.tuples(query_names, segment_values), max_size=4),
    plus=st.booleans(),
)
def test_query_parameters_bind_after_path_variables_in_query_order(
    params: list[tuple[str, tuple[Piece, ...]]], plus: bool
) -> None:
    builder: PathMatcherBuilder[str] = PathMatcherBuilder(
        MatcherOptions(query_param_unescape_plus=plus)
    )
    builder.register("GET", "/items/{id}", "route", system_query_params={"api_key"})

    # '&' and '=' separate parameters, so they travel escaped inside values.
    def raw(piece: Piece) -> str:
        return _escape(piece.raw).raw if piece.raw in "&=" else piece.raw

    def decoded(piece: Piece) -> str:
        return " " if plus and piece.raw == "+" else piece.decoded

    query = "&".join(
        [f"{name}={''.join(raw(p) for p in value)}" for name, value in params] + ["api_key=k"]
    )
    match = builder.build().lookup("GET", "/items/7", query)
    assert match is not None
    assert [(b.field_path, b.value) for b in match.bindings] == [(("id",), "7")] + [
        (tuple(name.split(".")), "".join(decoded(p) for p in value)) for name, value in params
    ]


small_templates = st.lists(
    st.lists(st.sampled_from(["a", "b", "*", "**", "{v}", "{w=a/*}"]), min_size=1, max_size=3).map(
        lambda segments: "/" + "/".join(segments)
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=100, deadline=None)
@given(
    templates=small_templates,
    order=st.randoms(use_true_random=False),
    paths=st.lists(st.lists(st.sampled_from(["a", "b", "c"]), max_size=4), min_size=1, max_size=5),
)
def test_registration_order_does_not_change_which_route_wins(
    templates: list[str], order: random.Random, paths: list[list[str]]
) -> None:
    valid = []
    for template in dict.fromkeys(templates):
        try:
            parse_template(template)
        except ValueError:
            continue
        valid.append(template)
    shuffled = list(valid)
    order.shuffle(shuffled)

    def build(sequence: list[str]) -> PathMatcherBuilder[str]:
        builder: PathMatcherBuilder[str] = PathMatcherBuilder()
        for template in sequence:
            builder.register("GET", template, template)
        return builder

    first, second = build(valid).build(), build(shuffled).build()
    for segments in paths:
        path = "/" + "/".join(segments)
        one, two = first.lookup("GET", path), second.lookup("GET", path)
        assert (one and (one.payload, one.bindings)) == (two and (two.payload, two.bindings))
