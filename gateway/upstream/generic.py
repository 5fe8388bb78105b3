"""Calls without protobuf IDL: JSON arguments in, a JSON result out.

Two upstreams implement :class:`GenericUpstream`: Triple's HTTP/JSON unary
mode (``gateway.upstream.triple_json``) and dubbo2 generic invocation over
hessian2 (``gateway.upstream.dubbo``). Both raise the gateway's error tree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class GenericCall:
    interface: str
    method: str
    # The HTTP body as the client sent it (JSON: an array of arguments, one
    # value, or an object by parameter name).
    body: bytes
    group: str | None = None
    version: str | None = None
    # Java parameter types, when known (config or request header).
    parameter_types: Sequence[str] | None = None
    # Forwarded as Dubbo attachments / Triple headers (lower-case names).
    attachments: Mapping[str, str] = field(default_factory=dict)
    application: str = "meshgate"
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class GenericReply:
    # The result as JSON text.
    body: bytes
    headers: Sequence[tuple[str, str]] = ()


class GenericUpstream(Protocol):
    async def call(self, address: str, call: GenericCall) -> GenericReply: ...

    async def close(self) -> None: ...


def parse_parameter_types(header: str | None) -> list[str] | None:
    """``x-dubbo-service-method-overloading: java.lang.String,int`` -> a list."""
    if not header:
        return None
    return [t.strip() for t in header.split(",") if t.strip()]


def json_args(body: Any) -> list[Any]:
    """Positional arguments from a JSON body: an array, or a single value."""
    if isinstance(body, list):
        return body
    return [body]
