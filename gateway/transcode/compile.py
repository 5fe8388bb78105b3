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

from gateway.config import ConfigIssue, TranscodeConfig
from gateway.descriptors import method_path
from gateway.transcode.fast_json import PlanCompiler
from gateway.transcode.http_rule import rules_for_method
from gateway.transcode.json_codec import MessageCodec, PrintOptions
from gateway.transcode.path_matcher import (
    BindingKey,
    DuplicateRouteError,
    MatcherOptions,
    PathMatcher,
    PathMatcherBuilder,
    UrlUnescapeSpec,
    binding_key,
)
from gateway.transcode.path_template import RouteTableError, parse_template
from gateway.transcode.rest import QueryOptions
from gateway.transcode.streaming import StreamFormat

Where = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class RpcMethod:
    service: str
    method: str
    input: MessageCodec
    output: MessageCodec
    client_streaming: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"


@dataclass(frozen=True, slots=True)
class RestTarget:
    method: RpcMethod
    http_method: str
    template: str
    body: str
    response_body: str
    path_variables: int


@dataclass(frozen=True, slots=True)
class Transcoding:
    methods: Mapping[str, RpcMethod]
    rest: PathMatcher[RestTarget] | None
    rest_http_methods: tuple[str, ...]
    stream_format: StreamFormat
    query: QueryOptions


def compile_transcoding(
    transcode: TranscodeConfig,
    pool: DescriptorPool,
    known: Mapping[str, Any],
    where: Where,
    issues: list[ConfigIssue],
    *,
    services_may_arrive: bool = False,
) -> Transcoding:
    """``services_may_arrive``: descriptors come from server reflection, so a
    service missing now is not an error; it is served once fetched."""
    codecs = _CodecCache(pool, transcode)
    for k, name in enumerate(transcode.services):
        if name not in known and not services_may_arrive:
            issues.append(
                ConfigIssue(
                    (*where, "transcode", "services", k),
                    f"unknown service {name!r}: not in any descriptor",
                )
            )
    methods: dict[str, RpcMethod] = {}
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
        query=QueryOptions(
            ignore_unknown=transcode.ignore_unknown_query_parameters,
            ignored=frozenset(transcode.ignored_query_parameters),
        ),
    )


def _rest_table(
    transcode: TranscodeConfig,
    known: Mapping[str, Any],
    codecs: _CodecCache,
    where: Where,
    issues: list[ConfigIssue],
) -> tuple[PathMatcher[RestTarget] | None, tuple[str, ...]]:
    """The route's ``google.api.http`` table.

    Two bindings with the same :class:`BindingKey` (HTTP method, and template
    with variable names dropped: ``GET /v1/items/{id}`` and
    ``GET /v1/items/{name}``), whether of one RPC, two RPCs of a service or RPCs
    of two listed services, would make the route unmatchable, so the second is
    an issue naming both RPCs.
    """
    builder: PathMatcherBuilder[RestTarget] = PathMatcherBuilder(
        MatcherOptions(
            url_unescape_spec=UrlUnescapeSpec[transcode.url_unescape_spec.upper()],
            query_param_unescape_plus=transcode.query_param_unescape_plus,
            match_unregistered_custom_verb=transcode.match_unregistered_custom_verb,
            fail_registration_on_duplicate=True,
        )
    )
    owners: dict[BindingKey, tuple[str, str]] = {}
    """Who registered each key: (RPC full name, template as written)."""
    http_methods: list[str] = []
    registered = 0
    listed: set[str] = set()
    for k, name in enumerate(transcode.services):
        service = known.get(name)
        # A service listed twice is served once, not reported as clashing with itself.
        if service is None or name in listed:
            continue
        listed.add(name)
        for method in service.methods:
            for rule in rules_for_method(method):
                place = (*where, "transcode", "services", k)
                problem = _check_rule(method, rule.body, rule.response_body, rule.template)
                if problem:
                    issues.append(ConfigIssue(place, f"{method.full_name}: {problem}"))
                    continue
                target = RestTarget(
                    codecs.binding(method),
                    rule.http_method,
                    rule.template,
                    rule.body,
                    rule.response_body,
                    len(parse_template(rule.template).variables),
                )
                key = binding_key(rule.http_method, rule.template)
                try:
                    builder.register(rule.http_method, rule.template, target, rule.body)
                except DuplicateRouteError:
                    issues.append(
                        ConfigIssue(
                            place,
                            _conflict(
                                method.full_name, rule.http_method, rule.template, key, owners
                            ),
                        )
                    )
                    continue
                except RouteTableError as exc:
                    issues.append(ConfigIssue(place, f"{method.full_name}: {exc}"))
                    continue
                owners[key] = (method.full_name, rule.template)
                registered += 1
                if rule.http_method not in http_methods:
                    http_methods.append(rule.http_method)
    return (builder.build() if registered else None), tuple(http_methods)


def _conflict(
    method: str,
    http_method: str,
    template: str,
    key: BindingKey,
    owners: Mapping[BindingKey, tuple[str, str]],
) -> str:
    first, first_template = owners.get(key, ("an earlier binding", key.pattern))
    same = "" if first_template == template else f" (as {http_method} {first_template})"
    who = "already bound by the same RPC" if first == method else f"already bound to {first}"
    return (
        f"{method}: {http_method} {template} is {who}{same}; an HTTP method and path "
        f"template ({key}, whatever the variable names) can route to only one RPC"
    )


def _check_rule(
    method: MethodDescriptor, body: str, response_body: str, template: str
) -> str | None:
    try:
        parsed = parse_template(template)
    except RouteTableError as exc:
        return str(exc)
    for variable in parsed.variables:
        if not _field_path_exists(method.input_type, variable.field_path):
            return (
                f"path variable {'.'.join(variable.field_path)!r} in {template!r} is not "
                f"a field of {method.input_type.full_name}"
            )
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
            pool,
            ignore_unknown=self._ignore_unknown,
            proto_names=transcode.preserve_proto_field_names,
            print_defaults=transcode.always_print_primitive_fields,
            enums_as_ints=transcode.enums_as_ints,
        )
        self._codecs: dict[str, MessageCodec] = {}
        self._bindings: dict[str, RpcMethod] = {}

    def codec(self, descriptor: Descriptor) -> MessageCodec:
        found = self._codecs.get(descriptor.full_name)
        if found is None:
            cls = message_factory.GetMessageClass(descriptor)
            found = MessageCodec(
                cls,
                self._pool,
                ignore_unknown_fields=self._ignore_unknown,
                options=self._options,
                compiler=self._compiler,
            )
            self._codecs[descriptor.full_name] = found
        return found

    def binding(self, method: MethodDescriptor) -> RpcMethod:
        found = self._bindings.get(method.full_name)
        if found is None:
            found = RpcMethod(
                service=method.containing_service.full_name,
                method=method.name,
                input=self.codec(method.input_type),
                output=self.codec(method.output_type),
                client_streaming=method.client_streaming,
                server_streaming=method.server_streaming,
            )
            self._bindings[method.full_name] = found
        return found
