"""What a dubbo2 request calls: the invocation, and builders for plain and generic calls.

Attachments follow what a Java consumer sends (``path``, ``interface``,
``version``, ``group``, ``timeout``); a generic call is
``GenericService.$invoke(String method, String[] parameterTypes, Object[] args)``
with the attachment ``generic=true``, so the provider needs no stub classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.dubbo.hessian2_types import TypedList
from gateway.dubbo.jvm_types import descriptor_for

DUBBO_VERSION = "2.0.2"
GENERIC_INVOKE = "$invoke"
GENERIC_INVOKE_TYPES = ("java.lang.String", "java.lang.String[]", "java.lang.Object[]")


@dataclass(frozen=True)
class Invocation:
    """One method call: what a request body carries."""

    service_path: str
    method_name: str
    parameter_types: str  # concatenated JVM descriptors, see ``descriptors``
    args: tuple[Any, ...] = ()
    attachments: Mapping[str, Any] = field(default_factory=dict)
    service_version: str | None = None
    dubbo_version: str = DUBBO_VERSION


def service_attachments(
    service: str,
    *,
    version: str | None = None,
    group: str | None = None,
    timeout_ms: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The attachments a Java consumer sends with every call to ``service``."""
    attachments: dict[str, Any] = {"path": service, "interface": service}
    if version:
        attachments["version"] = version
    if group:
        attachments["group"] = group
    if timeout_ms is not None:
        attachments["timeout"] = str(timeout_ms)
    if extra:
        attachments.update(extra)
    return attachments


def invocation(
    service: str,
    method: str,
    parameter_types: Sequence[str],
    args: Sequence[Any],
    *,
    version: str | None = None,
    group: str | None = None,
    timeout_ms: int | None = None,
    attachments: Mapping[str, Any] | None = None,
) -> Invocation:
    """A call of ``method(parameter_types...)``, types named as in Java source."""
    return Invocation(
        service_path=service,
        method_name=method,
        parameter_types=descriptor_for(parameter_types),
        args=tuple(args),
        attachments=service_attachments(
            service, version=version, group=group, timeout_ms=timeout_ms, extra=attachments
        ),
        service_version=version,
    )


def generic_invocation(
    service: str,
    method: str,
    parameter_types: Sequence[str],
    args: Sequence[Any],
    *,
    version: str | None = None,
    group: str | None = None,
    timeout_ms: int | None = None,
    attachments: Mapping[str, Any] | None = None,
) -> Invocation:
    """``GenericService.$invoke(method, parameterTypes, args)`` with ``generic=true``.

    The provider needs no Java class for the arguments: maps with a ``class``
    key are turned into that class by the provider's generic filter.
    """
    extra = {**(attachments or {}), "generic": "true"}
    return invocation(
        service,
        GENERIC_INVOKE,
        GENERIC_INVOKE_TYPES,
        (method, TypedList("[string", list(parameter_types)), TypedList("[object", list(args))),
        version=version,
        group=group,
        timeout_ms=timeout_ms,
        attachments=extra,
    )
