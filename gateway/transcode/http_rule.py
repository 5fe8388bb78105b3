"""Turn ``google.api.http`` options into path matcher registrations.

Mirrors grpc-httpjson-transcoding's ``PathMatcherUtility::RegisterByHttpRule``:
the rule's own pattern first, then each additional binding depth-first. An
additional binding does not inherit the parent's ``body``; a rule without a
pattern registers nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from google.api import annotations_pb2, http_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor

from gateway.transcode.path_matcher import PathMatcherBuilder

T = TypeVar("T")

# HttpRule's "pattern" oneof: field name -> HTTP method ("custom" carries its own).
_PATTERN_METHODS = {
    "get": "GET",
    "put": "PUT",
    "post": "POST",
    "delete": "DELETE",
    "patch": "PATCH",
}


@dataclass(frozen=True, slots=True)
class HttpBinding:
    """One (HTTP method, path template) route of an RPC method."""

    http_method: str
    template: str
    body: str
    """Request field the HTTP body maps to: "" none, "*" the whole message."""
    response_body: str
    """Response field the HTTP body is taken from: "" the whole message."""


def bindings_for_rule(rule: Any) -> list[HttpBinding]:
    """Flatten an ``HttpRule`` (message, or its proto3 JSON as a mapping) into bindings."""
    message = _as_http_rule(rule)
    bindings: list[HttpBinding] = []
    _collect(message, bindings)
    return bindings


def rules_for_method(method: MethodDescriptor) -> list[HttpBinding]:
    """The bindings declared by a method's ``option (google.api.http)``, if any."""
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return []
    return bindings_for_rule(options.Extensions[annotations_pb2.http])


def register_http_rule(
    builder: PathMatcherBuilder[T],
    rule: Any,
    payload: T,
    system_query_params: Iterable[str] = (),
) -> None:
    """Register every binding of ``rule``; stops at the first that raises."""
    system = frozenset(system_query_params)
    for binding in bindings_for_rule(rule):
        builder.register(binding.http_method, binding.template, payload, binding.body, system)


def _as_http_rule(rule: Any) -> Any:
    if isinstance(rule, http_pb2.HttpRule):
        return rule
    if isinstance(rule, Mapping):
        return json_format.ParseDict(rule, http_pb2.HttpRule())
    raise TypeError(f"expected a google.api.HttpRule or a mapping, got {type(rule).__name__}")


def _collect(rule: Any, into: list[HttpBinding]) -> None:
    pattern = rule.WhichOneof("pattern")
    if pattern == "custom":
        into.append(_binding(rule, rule.custom.kind, rule.custom.path))
    elif pattern is not None:
        into.append(_binding(rule, _PATTERN_METHODS[pattern], getattr(rule, pattern)))
    for additional in rule.additional_bindings:
        _collect(additional, into)


def _binding(rule: Any, http_method: str, template: str) -> HttpBinding:
    return HttpBinding(http_method, template, rule.body, rule.response_body)
