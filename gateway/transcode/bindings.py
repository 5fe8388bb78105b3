"""Compile a route's ``transcode`` section: which RPC each request reaches.

Two tables per route, both built once per snapshot: auto-mapped gRPC paths
(``POST /pkg.Service/Method``, a dict lookup) and the ``google.api.http``
bindings of the listed services (a path-template trie).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.descriptor_pool import DescriptorPool

from gateway.config import TranscodeConfig
from gateway.config_load import ConfigIssue
from gateway.descriptors import method_path
from gateway.transcode.fast_json import PlanCompiler
from gateway.transcode.http_rule import rules_for_method
from gateway.transcode.json_codec import MessageCodec, PrintOptions
from gateway.transcode.path_matcher import (
    MatcherOptions,
    PathMatcher,
    PathMatcherBuilder,
    UrlUnescapeSpec,
)
from gateway.transcode.path_template import RouteTableError, parse_template
from gateway.transcode.rest import QueryOptions
from gateway.transcode.streaming import StreamFormat

Where = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class MethodBinding:
    path: str
    input: MessageCodec
    output: MessageCodec
    client_streaming: bool
    server_streaming: bool


@dataclass(frozen=True, slots=True)
class RestTarget:
    method: MethodBinding
    http_method: str
    template: str
    body: str
    response_body: str
    path_variables: int


@dataclass(frozen=True, slots=True)
class Transcoding:
    methods: Mapping[str, MethodBinding]
    rest: PathMatcher[RestTarget] | None
    rest_http_methods: tuple[str, ...]
    stream_format: StreamFormat
    query: QueryOptions


def compile_transcoding(transcode: TranscodeConfig, pool: DescriptorPool,
                        known: Mapping[str, Any], where: Where,
                        issues: list[ConfigIssue], *,
                        services_may_arrive: bool = False) -> Transcoding:
    """``services_may_arrive``: descriptors come from server reflection, so a
    service missing now is not an error; it is served once fetched."""
    codecs = _CodecCache(pool, transcode)
    for k, name in enumerate(transcode.services):
        if name not in known and not services_may_arrive:
            issues.append(ConfigIssue((*where, "transcode", "services", k),
                                      f"unknown service {name!r}: not in any descriptor"))
    methods: dict[str, MethodBinding] = {}
    if transcode.auto_mapping:
        for name in transcode.services or known:
            for method in known[name].methods if name in known else ():
                methods[method_path(method)] = codecs.binding(method)
    rest, http_methods = _rest_table(transcode, known, codecs, where, issues)
    return Transcoding(
        methods=methods,
        rest=rest,
        rest_http_methods=http_methods,
        stream_format=transcode.stream,
        query=QueryOptions(ignore_unknown=transcode.ignore_unknown_query_parameters,
                           ignored=frozenset(transcode.ignored_query_parameters)),
    )


def _rest_table(transcode: TranscodeConfig, known: Mapping[str, Any], codecs: _CodecCache,
                where: Where, issues: list[ConfigIssue]
                ) -> tuple[PathMatcher[RestTarget] | None, tuple[str, ...]]:
    builder: PathMatcherBuilder[RestTarget] = PathMatcherBuilder(MatcherOptions(
        url_unescape_spec=UrlUnescapeSpec[transcode.url_unescape_spec.upper()],
        query_param_unescape_plus=transcode.query_param_unescape_plus,
        match_unregistered_custom_verb=transcode.match_unregistered_custom_verb,
    ))
    http_methods: list[str] = []
    registered = 0
    for k, name in enumerate(transcode.services):
        service = known.get(name)
        if service is None:
            continue
        for method in service.methods:
            for rule in rules_for_method(method):
                place = (*where, "transcode", "services", k)
                problem = _check_rule(method, rule.body, rule.response_body, rule.template)
                if problem:
                    issues.append(ConfigIssue(place, f"{method.full_name}: {problem}"))
                    continue
                target = RestTarget(codecs.binding(method), rule.http_method, rule.template,
                                    rule.body, rule.response_body,
                                    len(parse_template(rule.template).variables))
                try:
                    builder.register(rule.http_method, rule.template, target, rule.body)
                except RouteTableError as exc:
                    issues.append(ConfigIssue(place, f"{method.full_name}: {exc}"))
                    continue
                registered += 1
                if rule.http_method not in http_methods:
                    http_methods.append(rule.http_method)
    return (builder.build() if registered else None), tuple(http_methods)


def _check_rule(method: MethodDescriptor, body: str, response_body: str,
                template: str) -> str | None:
    try:
        parsed = parse_template(template)
    except RouteTableError as exc:
        return str(exc)
    for variable in parsed.variables:
        if not _field_path_exists(method.input_type, variable.field_path):
            return (f"path variable {'.'.join(variable.field_path)!r} in {template!r} is not "
                    f"a field of {method.input_type.full_name}")
    if body and body != "*" and not _field_path_exists(method.input_type, body.split(".")):
        return f"body {body!r} is not a field of {method.input_type.full_name}"
    if response_body and not _field_path_exists(method.output_type, response_body.split(".")):
        return f"response_body {response_body!r} is not a field of {method.output_type.full_name}"
    return None


def _field_path_exists(descriptor: Descriptor, path: Any) -> bool:
    current: Descriptor | None = descriptor
    for part in path:
        if current is None:
            return False
        field = current.fields_by_name.get(part)
        if field is None:
            return False
        current = field.message_type
    return True


class _CodecCache:
    def __init__(self, pool: DescriptorPool, transcode: TranscodeConfig) -> None:
        self._pool = pool
        self._ignore_unknown = transcode.ignore_unknown_fields
        self._options = PrintOptions(
            preserve_proto_field_names=transcode.preserve_proto_field_names,
            always_print_primitive_fields=transcode.always_print_primitive_fields,
            enums_as_ints=transcode.enums_as_ints,
        )
        self._compiler = PlanCompiler(
            pool, ignore_unknown=self._ignore_unknown,
            proto_names=transcode.preserve_proto_field_names,
            print_defaults=transcode.always_print_primitive_fields,
            enums_as_ints=transcode.enums_as_ints)
        self._codecs: dict[str, MessageCodec] = {}
        self._bindings: dict[str, MethodBinding] = {}

    def codec(self, descriptor: Descriptor) -> MessageCodec:
        found = self._codecs.get(descriptor.full_name)
        if found is None:
            cls = message_factory.GetMessageClass(descriptor)
            found = MessageCodec(cls, self._pool, ignore_unknown_fields=self._ignore_unknown,
                                 options=self._options, compiler=self._compiler)
            self._codecs[descriptor.full_name] = found
        return found

    def binding(self, method: MethodDescriptor) -> MethodBinding:
        found = self._bindings.get(method.full_name)
        if found is None:
            found = MethodBinding(
                path=method_path(method),
                input=self.codec(method.input_type),
                output=self.codec(method.output_type),
                client_streaming=method.client_streaming,
                server_streaming=method.server_streaming,
            )
            self._bindings[method.full_name] = found
        return found
