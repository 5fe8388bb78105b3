"""Envoy-style access log format strings, compiled once at load (sans-IO).

``%OPERATOR%``, ``%OPERATOR(ARGUMENT)%`` or ``%OPERATOR(ARGUMENT):LENGTH%``
between literal text, as in Envoy's access log format. A value that is
unknown or empty prints as ``-``, as in Envoy; ``LENGTH`` cuts it; ``%%`` is a
literal ``%``. An operator this module does not know is refused at load
(:class:`FormatError`), never printed as is.

Operators (Envoy's names and meaning unless marked *meshgate*):

    START_TIME[(strftime format)]   request start, UTC; default 2026-12-02T13:28:10.123Z
    REQ(NAME[?ALT])[:N]             request header (or :method :path :authority :scheme)
    REQ_WITHOUT_QUERY(...)          as REQ, the query cut from :path
    RESP(NAME[?ALT])[:N]            response header
    RESPONSE_CODE                   HTTP status sent (499: the client left first)
    RESPONSE_FLAGS                  DC NR UH UF UT, derived from the status (see docs)
    GRPC_STATUS[(CAMEL_STRING|SNAKE_STRING|NUMBER)]   the upstream's final gRPC status
    BYTES_RECEIVED BYTES_SENT       request and response body bytes
    DURATION                        request head to the end of the response, ms
    UPSTREAM_DURATION               *meshgate*: time spent in upstream attempts, ms
    UPSTREAM_HOST UPSTREAM_CLUSTER ROUTE_NAME
    UPSTREAM_PROTOCOL               *meshgate*: grpc, triple, triple-json or dubbo2
    UPSTREAM_REQUEST_ATTEMPT_COUNT  attempts made (retries + 1)
    PROTOCOL                        HTTP/1.1 or HTTP/2
    DOWNSTREAM_REMOTE_ADDRESS[_WITHOUT_PORT], DOWNSTREAM_DIRECT_REMOTE_ADDRESS[_WITHOUT_PORT]
    TRACE_ID                        the W3C trace ID, when tracing is on
    REQUEST_ID                      *meshgate*: the request ID (whatever header carries it)
    LISTENER_NAME                   *meshgate*: the listener that took the request
    HOSTNAME                        this host's name
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from gateway.access_log.record import UtcTimes, client_address, header
from gateway.errors import Code
from gateway.exchange import Exchange

# A part of a compiled format: the exchange to its value, None printing as "-".
Field = Callable[[Exchange], str | None]
Render = Callable[[Exchange], str]

ENVOY_DEFAULT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"'
)


class FormatError(ValueError):
    """A format string that cannot be compiled; the message says where and why."""


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


_GRPC_NAMES = {
    "SNAKE_STRING": {int(c): c.name for c in Code},
    "CAMEL_STRING": {int(c): _camel(c.name) for c in Code},
}


def _grpc_status(argument: str) -> Field:
    if argument == "NUMBER":
        return lambda e: None if e.grpc_status is None else str(e.grpc_status)
    names = _GRPC_NAMES.get(argument or "CAMEL_STRING")
    if names is None:
        raise FormatError(
            f"GRPC_STATUS takes CAMEL_STRING, SNAKE_STRING or NUMBER, not {argument!r}"
        )
    return lambda e: None if e.grpc_status is None else names.get(e.grpc_status, str(e.grpc_status))


def _start_time(argument: str) -> Field:
    if not argument:
        times = UtcTimes()
        return lambda e: times(e.wall_time)
    try:
        time.strftime(argument, time.gmtime(0))
    except ValueError as exc:
        raise FormatError(f"START_TIME format {argument!r}: {exc}") from None
    return lambda e: time.strftime(argument, time.gmtime(e.wall_time))


def _pseudo(name: str, without_query: bool) -> Field | None:
    if name == ":method":
        return lambda e: e.method
    if name == ":path":
        if without_query:
            return lambda e: e.path
        return lambda e: (
            f"{e.path}?{e.query_string.decode('latin-1')}" if e.query_string else e.path
        )
    if name == ":authority":
        return lambda e: header(e.request_headers, "host")
    if name == ":scheme":
        return lambda e: "http"
    return None


def _named_header(name: str, response: bool) -> Field:
    if response:
        return lambda e: header(e.response_headers, name)
    return lambda e: header(e.request_headers, name)


def _header_field(argument: str, response: bool, without_query: bool = False) -> Field:
    if not argument:
        raise FormatError("REQ and RESP need a header name: %REQ(USER-AGENT)%")
    fields: list[Field] = []
    for name in argument.lower().split("?", 1):
        if name.startswith(":"):
            pseudo = None if response else _pseudo(name, without_query)
            if pseudo is None:
                raise FormatError(f"unknown pseudo-header {name!r}")
            fields.append(pseudo)
        else:
            fields.append(_named_header(name, response))
    if len(fields) == 1:
        return fields[0]
    first, alternative = fields

    def either(exchange: Exchange) -> str | None:
        return first(exchange) or alternative(exchange)

    return either


def _response_flags(exchange: Exchange) -> str | None:
    status = exchange.status
    if status == 499:
        return "DC"  # downstream connection termination
    if status == 404 and not exchange.route:
        return "NR"  # no route
    if status == 504 and exchange.attempts:
        return "UT"  # upstream request timeout
    if status == 503:
        return "UF" if exchange.attempts else "UH"  # connection failure / no healthy upstream
    return None


def _remote(with_port: bool) -> Field:
    if with_port:
        return lambda e: client_address(e) or None
    return lambda e: e.client[0] if e.client else None


_HOSTNAME = socket.gethostname()

# Operators without an argument.
_PLAIN: dict[str, Field] = {
    "RESPONSE_CODE": lambda e: str(e.status),
    "RESPONSE_FLAGS": _response_flags,
    "BYTES_RECEIVED": lambda e: str(e.bytes_received),
    "BYTES_SENT": lambda e: str(e.bytes_sent),
    "DURATION": lambda e: _ms(e.seconds),
    "UPSTREAM_DURATION": lambda e: _ms(e.upstream_seconds) if e.attempts else None,
    "UPSTREAM_HOST": lambda e: e.endpoint,
    "UPSTREAM_CLUSTER": lambda e: e.cluster,
    "UPSTREAM_PROTOCOL": lambda e: e.upstream,
    "UPSTREAM_REQUEST_ATTEMPT_COUNT": lambda e: str(len(e.attempts)),
    "ROUTE_NAME": lambda e: e.route,
    "PROTOCOL": lambda e: f"HTTP/{e.http_version}" if e.http_version else None,
    "DOWNSTREAM_REMOTE_ADDRESS": _remote(True),
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": _remote(False),
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": _remote(True),
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": _remote(False),
    "TRACE_ID": lambda e: e.trace_id,
    "REQUEST_ID": lambda e: e.request_id,
    "LISTENER_NAME": lambda e: e.listener,
    "HOSTNAME": lambda e: _HOSTNAME,
}

# Operators with an argument (optional for START_TIME and GRPC_STATUS).
_WITH_ARGUMENT: dict[str, Callable[[str], Field]] = {
    "START_TIME": _start_time,
    "GRPC_STATUS": _grpc_status,
    "REQ": lambda a: _header_field(a, response=False),
    "REQ_WITHOUT_QUERY": lambda a: _header_field(a, response=False, without_query=True),
    "RESP": lambda a: _header_field(a, response=True),
}
_NEED_ARGUMENT = frozenset({"REQ", "REQ_WITHOUT_QUERY", "RESP"})

OPERATORS = frozenset(_PLAIN) | frozenset(_WITH_ARGUMENT)

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _operator(name: str, argument: str | None, where: int) -> Field:
    if name in _PLAIN:
        if argument is not None:
            raise FormatError(f"%{name}% takes no argument (at character {where})")
        return _PLAIN[name]
    if name in _WITH_ARGUMENT:
        if argument is None and name in _NEED_ARGUMENT:
            raise FormatError(f"%{name}% needs an argument, as %{name}(NAME)% (at {where})")
        try:
            return _WITH_ARGUMENT[name](argument or "")
        except FormatError as exc:
            raise FormatError(f"{exc} (at character {where})") from None
    known = ", ".join(sorted(OPERATORS))
    raise FormatError(f"unknown operator %{name}% at character {where}; known: {known}")


def _truncated(field: Field, length: int) -> Field:
    def cut(exchange: Exchange) -> str | None:
        value = field(exchange)
        return value[:length] if value else value

    return cut


def parse(text: str) -> list[str | Field]:
    """The format's parts: literal text and compiled operators."""
    parts: list[str | Field] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        start = text.find("%", i)
        if start < 0:
            literal.append(text[i:])
            break
        literal.append(text[i:start])
        if text.startswith("%%", start):
            literal.append("%")
            i = start + 2
            continue
        end = start + 1
        while end < len(text) and text[end] in _NAME_CHARS:
            end += 1
        name = text[start + 1 : end]
        if not name:
            raise FormatError(f"a lone '%' at character {start}; write %% for a literal one")
        argument: str | None = None
        if text.startswith("(", end):
            close = text.find(")", end)
            if close < 0:
                raise FormatError(f"%{name}( at character {start} has no closing ')'")
            argument, end = text[end + 1 : close], close + 1
        length: int | None = None
        if text.startswith(":", end):
            digits = end + 1
            end = digits
            while end < len(text) and text[end].isdigit():
                end += 1
            if end == digits:
                raise FormatError(f"%{name}...: at character {start} needs a length")
            length = int(text[digits:end])
        if not text.startswith("%", end):
            raise FormatError(f"%{name} at character {start} is not closed by '%'")
        field = _operator(name, argument, start)
        if length is not None:
            field = _truncated(field, length)
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(field)
        i = end + 1
    if literal and "".join(literal):
        parts.append("".join(literal))
    return parts


# Control characters a value could smuggle in (a decoded %0A in the path) would
# split or forge log lines: each is written as a "?" instead.
_CONTROLS = {c: "?" for c in [*range(0x20), 0x7F] if c != 0x09}  # tabs are kept


def compile_format(text: str) -> Render:
    """A function writing one exchange as ``text`` says, on one line (a
    trailing newline in ``text`` is dropped: the writer ends every line)."""
    parts = tuple(parse(text.rstrip("\n")))

    def render(exchange: Exchange) -> str:
        line = "".join(p if isinstance(p, str) else (p(exchange) or "-") for p in parts)
        return line if line.isprintable() else line.translate(_CONTROLS)

    return render


# ``only:`` of the access log config: which statuses are written.
STATUS_FILTERS = {"all": (0, 999), "errors": (400, 999), "server_errors": (500, 999)}


def status_range(only: str) -> tuple[int, int]:
    """The inclusive status range ``only`` names: all, errors (>= 400),
    server_errors (>= 500), or ``MIN-MAX`` (``500-599``)."""
    if only in STATUS_FILTERS:
        return STATUS_FILTERS[only]
    low, sep, high = only.partition("-")
    if sep and low.strip().isdigit() and high.strip().isdigit():
        bounds = int(low), int(high)
        if 100 <= bounds[0] <= bounds[1] <= 999:
            return bounds
    raise FormatError(
        f"only: {only!r} is not all, errors, server_errors or a status range like 500-599"
    )
