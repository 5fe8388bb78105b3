"""Conformance vectors from grpc-httpjson-transcoding's own unit tests.

tests/data/http_template_cases.json holds every case (its ``source`` block
names the upstream commit and files, its ``field_docs`` what each field
means; ``null`` means the upstream test did not assert that field).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool

from gateway.transcode.http_rule import (
    HttpBinding,
    bindings_for_rule,
    register_http_rule,
    rules_for_method,
)
from gateway.transcode.path_matcher import (
    DuplicateRouteError,
    MatcherOptions,
    PathMatcherBuilder,
    UrlUnescapeSpec,
)
from gateway.transcode.path_template import TemplateError, parse_template

CASES: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "http_template_cases.json").read_text("utf-8")
)


def _params(section: str) -> list[Any]:
    return [pytest.param(case, id=f"{case['id']}-{case['test_name']}") for case in CASES[section]]


def test_every_section_is_present() -> None:
    counts = {
        section: len(CASES[section])
        for section in ("template_parse_cases", "path_match_cases", "http_rule_registration_cases")
    }
    assert sum(counts.values()) == 237, counts


@pytest.mark.parametrize("case", _params("template_parse_cases"))
def test_template_parse(case: dict[str, Any]) -> None:
    if not case["valid"]:
        with pytest.raises(TemplateError):
            parse_template(case["template"])
        return
    parsed = parse_template(case["template"])
    assert list(parsed.segments) == case["segments"]
    if case.get("verb") is not None:
        assert parsed.verb == case["verb"]
    if case.get("variables") is not None:
        actual = [
            {
                "field_path": list(var.field_path),
                "start_segment": var.start_segment,
                "end_segment": var.end_segment,
                "has_wildcard_path": var.has_wildcard_path,
            }
            for var in parsed.variables
        ]
        assert actual == case["variables"]


def _options(raw: dict[str, Any]) -> MatcherOptions:
    return MatcherOptions(
        url_unescape_spec=UrlUnescapeSpec(raw["url_unescape_spec"]),
        query_param_unescape_plus=raw["query_param_unescape_plus"],
        match_unregistered_custom_verb=raw["match_unregistered_custom_verb"],
        fail_registration_on_duplicate=raw["fail_registration_on_duplicate"],
    )


def _request_path(request: dict[str, Any]) -> str:
    if request["path"] is not None:
        return str(request["path"])
    built = request["path_construction"]
    return str(built["prefix"] + built["repeat"] * built["count"] + built["suffix"])


@pytest.mark.parametrize("case", _params("path_match_cases"))
def test_path_match(case: dict[str, Any]) -> None:
    builder: PathMatcherBuilder[str] = PathMatcherBuilder(_options(case["options"]))
    failed = []
    for rule in case["rules"]:
        try:
            builder.register(
                rule["http_method"],
                rule["template"],
                rule["name"],
                rule["body_field_path"],
                rule.get("system_query_params", ()),
            )
        except (TemplateError, DuplicateRouteError):
            failed.append(rule["name"])
    assert failed == case.get("registration_failures", [])

    request = case["request"]
    match = builder.build().lookup(request["method"], _request_path(request), request["query"])

    if case["expected_match"] is None:
        assert match is None
        return
    assert match is not None
    assert match.payload == case["expected_match"]
    if "expected_bindings" in case:
        expected = case["expected_bindings"]
        assert len(match.bindings) == len(expected)
        for binding, want in zip(match.bindings, expected, strict=True):
            assert binding.value == want["value"]
            if want["field_path"] is not None:
                assert list(binding.field_path) == want["field_path"]
    if "expected_body_field_path" in case:
        assert match.body_field_path == case["expected_body_field_path"]


class _RecordingBuilder(PathMatcherBuilder[str]):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, str]] = []

    def register(self, http_method: str, template: Any, payload: str, *args: Any) -> None:
        body_field_path = args[0] if args else ""
        self.calls.append(
            {"http_method": http_method, "template": template, "body": body_field_path}
        )
        super().register(http_method, template, payload, *args)


@pytest.mark.parametrize("case", _params("http_rule_registration_cases"))
def test_http_rule_registration(case: dict[str, Any]) -> None:
    builder = _RecordingBuilder()
    register_http_rule(builder, case["http_rule"], "method")
    assert builder.calls == case["expected_register_calls"]


# --- behaviour the lead relies on beyond the upstream vectors ------------------------


def test_template_error_says_what_and_where() -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template("/a//b")
    assert caught.value.position == 3
    assert "offset 3" in str(caught.value)
    with pytest.raises(TemplateError, match=r"only literal segments may follow '\*\*'"):
        parse_template("/a/**/foo/*")


def test_http_rule_message_and_dict_agree() -> None:
    rule = http_pb2.HttpRule(post="/v1/things", body="*", response_body="thing")
    rule.additional_bindings.add(get="/v1/things/{id}")
    as_dict = {
        "post": "/v1/things",
        "body": "*",
        "response_body": "thing",
        "additional_bindings": [{"get": "/v1/things/{id}"}],
    }
    expected = [
        HttpBinding("POST", "/v1/things", "*", "thing"),
        HttpBinding("GET", "/v1/things/{id}", "", ""),
    ]
    assert bindings_for_rule(rule) == expected
    assert bindings_for_rule(as_dict) == expected


def test_rules_for_method_reads_the_http_option_of_a_runtime_pool() -> None:
    pool = descriptor_pool.DescriptorPool()
    for module in (descriptor_pb2, http_pb2, annotations_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    shop = descriptor_pb2.FileDescriptorProto(
        name="shop.proto",
        package="shop",
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    shop.message_type.add(name="Req").field.add(
        name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    )
    service = shop.service.add(name="Shop")
    with_rule = service.method.add(name="Get", input_type=".shop.Req", output_type=".shop.Req")
    rule = with_rule.options.Extensions[annotations_pb2.http]
    rule.get = "/v1/items/{id}"
    rule.additional_bindings.add(delete="/v1/items/{id}")
    service.method.add(name="Plain", input_type=".shop.Req", output_type=".shop.Req")
    pool.Add(shop)

    methods = pool.FindServiceByName("shop.Shop").methods_by_name
    assert rules_for_method(methods["Get"]) == [
        HttpBinding("GET", "/v1/items/{id}", "", ""),
        HttpBinding("DELETE", "/v1/items/{id}", "", ""),
    ]
    assert rules_for_method(methods["Plain"]) == []


def test_duplicates_are_reported_and_make_the_route_unmatchable() -> None:
    builder: PathMatcherBuilder[str] = PathMatcherBuilder()
    builder.register("GET", "/a/{x}", "first")
    builder.register("GET", "/a/{y}", "second")
    builder.register("POST", "/a/{x}", "post")
    assert builder.duplicates == [("GET", "/a/{y}")]
    matcher = builder.build()
    assert matcher.lookup("GET", "/a/1") is None
    post = matcher.lookup("POST", "/a/1")
    assert post is not None and post.payload == "post"


def test_method_wildcard_matches_any_method_and_keeps_the_verb() -> None:
    builder: PathMatcherBuilder[str] = PathMatcherBuilder()
    builder.register("*", "/a/{x}", "any")
    builder.register("*", "/a/{x}:run", "any-run")
    builder.register("GET", "/a/{x}", "get")
    matcher = builder.build()
    get = matcher.lookup("GET", "/a/1")
    put = matcher.lookup("PUT", "/a/1")
    run = matcher.lookup("DELETE", "/a/1:run")
    assert get is not None and get.payload == "get"
    assert put is not None and put.payload == "any"
    assert run is not None and run.payload == "any-run"


def test_built_matcher_is_a_snapshot() -> None:
    builder: PathMatcherBuilder[str] = PathMatcherBuilder()
    builder.register("GET", "/a", "a")
    matcher = builder.build()
    builder.register("GET", "/b", "b")
    builder.register("GET", "/a", "a-again")
    assert matcher.lookup("GET", "/b") is None
    found = matcher.lookup("GET", "/a")
    assert found is not None and found.payload == "a"


def test_non_utf8_escapes_survive_as_surrogates() -> None:
    builder: PathMatcherBuilder[str] = PathMatcherBuilder()
    builder.register("GET", "/b/{x}", "b")
    found = builder.build().lookup("GET", "/b/%E4%B8%AD%FF")
    assert found is not None
    assert found.bindings[0].value.encode("utf-8", "surrogateescape") == "中".encode() + b"\xff"


def test_capture_after_multi_wildcard_binds_its_own_segment() -> None:
    # Deliberate fix over the C++ library, which binds by absolute position here.
    builder: PathMatcherBuilder[str] = PathMatcherBuilder()
    builder.register("GET", "/files/**/{name=meta}/{kind=raw}", "r")
    found = builder.build().lookup("GET", "/files/a/b/c/meta/raw")
    assert found is not None
    assert [(b.field_path, b.value) for b in found.bindings] == [
        (("name",), "meta"),
        (("kind",), "raw"),
    ]
