"""The JSON access log line of one exchange (the default format), sans-IO."""

from __future__ import annotations

import time
from collections.abc import Iterable

import orjson

from gateway.exchange import Exchange

_USER_AGENT = "user-agent"


class UtcTimes:
    """ISO 8601 UTC with milliseconds (``2026-12-02T13:28:10.123Z``), Envoy's
    default START_TIME; the seconds part is formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, wall_time: float) -> str:
        second = int(wall_time)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        millis = int((wall_time - second) * 1000)
        return f"{self._prefix}.{millis:03d}Z"


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of a request or response header (lower-cased ``name``)."""
    for key, value in headers:
        if key == name:
            return value
    return None


def client_address(exchange: Exchange) -> str:
    client = exchange.client
    if client is None:
        return ""
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def milliseconds(seconds: float) -> float:
    return round(seconds * 1000, 3)


def json_record(exchange: Exchange, times: UtcTimes) -> dict[str, object]:
    return {
        "time": times(exchange.wall_time),
        "listener": exchange.listener,
        "method": exchange.method,
        "path": exchange.path,
        "protocol": f"HTTP/{exchange.http_version}" if exchange.http_version else "",
        "route": exchange.route,
        "cluster": exchange.cluster,
        "endpoint": exchange.endpoint,
        "upstream_protocol": exchange.upstream,
        "status": exchange.status,
        "grpc_status": exchange.grpc_status,
        "bytes_received": exchange.bytes_received,
        "bytes_sent": exchange.bytes_sent,
        "duration_ms": milliseconds(exchange.seconds),
        "upstream_duration_ms": milliseconds(exchange.upstream_seconds),
        "retries": exchange.retries,
        "request_id": exchange.request_id,
        "trace_id": exchange.trace_id,
        "client": client_address(exchange),
        "user_agent": header(exchange.request_headers, _USER_AGENT) or "",
    }


def json_line(exchange: Exchange, times: UtcTimes) -> bytes:
    return orjson.dumps(json_record(exchange, times), option=orjson.OPT_APPEND_NEWLINE)
