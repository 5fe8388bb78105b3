"""Calls without protobuf IDL: JSON arguments in, a JSON result out.

Two upstreams take these: Triple's HTTP/JSON unary mode
(``gateway.upstream.triple_json``) and dubbo2 generic invocation over
hessian2 (``gateway.upstream.dubbo``). Both raise the gateway's error tree.
Neither streams.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.errors import Code, GatewayError
from gateway.upstream.call import Call, Reply

GenericReply = Reply


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

    @classmethod
    def from_call(cls, call: Call, timeout: float | None) -> GenericCall:
        return cls(
            interface=call.service,
            method=call.method,
            body=call.messages[0] if call.messages else b"",
            group=call.dubbo.group,
            version=call.dubbo.version,
            parameter_types=call.dubbo.parameter_types,
            attachments={k: v for k, v in call.metadata if isinstance(v, str)},
            application=call.dubbo.application,
            timeout=timeout,
        )


def no_streaming(call: Call) -> GatewayError:
    return GatewayError(
        f"{call.path}: this protocol has no streaming calls", grpc_code=Code.UNIMPLEMENTED
    )


def parse_parameter_types(header: str | None) -> list[str] | None:
    """``x-dubbo-service-method-overloading: java.lang.String,int`` -> a list."""
    if not header:
        return None
    return [t.strip() for t in header.split(",") if t.strip()]
