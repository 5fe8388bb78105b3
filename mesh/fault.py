"""Fault injection (gRFC A33): the policy data and the per-request decision.

The gateway executes faults; this module only says, for one request, whether
to delay (and how long) and whether to abort (and with which gRPC status).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mesh.xds.matchers import HeaderMatcher, header_value

# Envoy's header-controlled faults, which gRPC honours too.
ABORT_GRPC_HEADER = "x-envoy-fault-abort-grpc-request"
ABORT_HTTP_HEADER = "x-envoy-fault-abort-request"
ABORT_PERCENT_HEADER = "x-envoy-fault-abort-request-percentage"
DELAY_HEADER = "x-envoy-fault-delay-request"
DELAY_PERCENT_HEADER = "x-envoy-fault-delay-request-percentage"

Fraction = tuple[int, int]  # numerator, denominator


@dataclass(frozen=True, slots=True)
class FaultPolicy:
    delay_s: float | None = None
    delay_from_header: bool = False
    delay_fraction: Fraction = (0, 100)
    abort_code: int | None = None
    abort_from_header: bool = False
    abort_fraction: Fraction = (0, 100)
    headers: tuple[HeaderMatcher, ...] = ()
    max_active_faults: int | None = None


# gRPC's mapping of an HTTP status to a gRPC status (doc/http-grpc-status-mapping.md).
_HTTP_TO_GRPC = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}
UNKNOWN = 2


def grpc_status_for_http(status: int) -> int:
    return _HTTP_TO_GRPC.get(status, UNKNOWN)


def fault_decision(
    fault: FaultPolicy | None,
    rng: random.Random,
    headers: Mapping[str, str | Sequence[str]] | None = None,
) -> tuple[float | None, int | None]:
    """(delay in seconds or None, abort gRPC status or None) for one request."""
    if fault is None:
        return None, None
    headers = headers or {}
    if not all(m.matches(headers) for m in fault.headers):
        return None, None
    return _delay(fault, rng, headers), _abort(fault, rng, headers)


def _delay(
    fault: FaultPolicy, rng: random.Random, headers: Mapping[str, str | Sequence[str]]
) -> float | None:
    delay = fault.delay_s
    fraction = fault.delay_fraction
    if fault.delay_from_header:
        millis = _int_header(headers, DELAY_HEADER)
        if millis is None:
            return None
        delay = millis / 1000.0
        fraction = _header_fraction(headers, DELAY_PERCENT_HEADER, fraction)
    if delay is None or not _roll(rng, fraction):
        return None
    return delay


def _abort(
    fault: FaultPolicy, rng: random.Random, headers: Mapping[str, str | Sequence[str]]
) -> int | None:
    code = fault.abort_code
    fraction = fault.abort_fraction
    if fault.abort_from_header:
        grpc_code = _int_header(headers, ABORT_GRPC_HEADER)
        http_code = _int_header(headers, ABORT_HTTP_HEADER)
        if grpc_code is not None:
            code = grpc_code
        elif http_code is not None:
            code = grpc_status_for_http(http_code)
        else:
            return None
        fraction = _header_fraction(headers, ABORT_PERCENT_HEADER, fraction)
    if code is None or code == 0 or not _roll(rng, fraction):
        return None
    return code


def _roll(rng: random.Random, fraction: Fraction) -> bool:
    numerator, denominator = fraction
    return rng.randrange(denominator) < numerator


def _int_header(headers: Mapping[str, str | Sequence[str]], name: str) -> int | None:
    value = header_value(headers, name)
    if value is None:
        return None
    try:
        return int(value.split(",")[0])
    except ValueError:
        return None


def _header_fraction(
    headers: Mapping[str, str | Sequence[str]], name: str, configured: Fraction
) -> Fraction:
    # The header may lower the configured percentage, never raise it.
    numerator = _int_header(headers, name)
    if numerator is None:
        return configured
    return min(max(numerator, 0), configured[0]), configured[1]
