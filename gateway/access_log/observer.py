"""The access log as an app observer: filter, sample, format, hand to the writer.

Everything here runs on the event loop after the response was sent, and
costs a status comparison, maybe a random number, and the formatting; the
disk is the writer thread's business. Without ``access_log:`` in the config
no observer exists at all.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

from gateway.access_log.format import compile_format, status_range
from gateway.access_log.record import UtcTimes, json_line
from gateway.access_log.writer import LineWriter
from gateway.config.observability import AccessLogConfig
from gateway.exchange import Exchange

Line = Callable[[Exchange], bytes]


class Sink(Protocol):
    """Where lines go: the LineWriter, or a test's list."""

    def put(self, line: bytes) -> None: ...
    def reopen(self) -> None: ...
    def close(self) -> None: ...


def line_maker(format_text: str) -> Line:
    """The whole line (newline included) of an exchange, in ``format_text``."""
    times = UtcTimes()
    if format_text == "json":
        return lambda exchange: json_line(exchange, times)
    render = compile_format(format_text)
    return lambda exchange: (render(exchange) + "\n").encode()


class AccessLog:
    def __init__(
        self,
        config: AccessLogConfig,
        writer: Sink | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.writer: Sink = writer or LineWriter(config.path, config.buffer_lines)
        self._line = line_maker(config.format)
        self._low, self._high = status_range(config.only)
        self._sample = config.sample
        self._rng = rng

    def __call__(self, exchange: Exchange) -> None:
        if not self._low <= exchange.status <= self._high:
            return
        if self._sample < 1.0 and self._rng() >= self._sample:
            return
        self.writer.put(self._line(exchange))

    def reopen(self) -> None:
        self.writer.reopen()

    def close(self) -> None:
        """Write what is buffered (blocking: call it from a thread)."""
        self.writer.close()


# The access log settings of a config: the top-level one, and each
# listener's own where it has one.
Settings = tuple[AccessLogConfig | None, dict[str, AccessLogConfig]]


class AccessLogs:
    """The observer for a whole config: each listener's own log, else the top-level
    one. Built only when some access log is configured."""

    def __init__(
        self, settings: Settings, open_log: Callable[[AccessLogConfig], AccessLog]
    ) -> None:
        self.settings = settings
        default, per_listener = settings
        self._default = open_log(default) if default is not None else None
        self._by_listener = {name: open_log(c) for name, c in per_listener.items()}

    @property
    def logs(self) -> list[AccessLog]:
        own = list(self._by_listener.values())
        return [self._default, *own] if self._default is not None else own

    def __call__(self, exchange: Exchange) -> None:
        log = self._by_listener.get(exchange.listener, self._default)
        if log is not None:
            log(exchange)

    def reopen(self) -> None:
        for log in self.logs:
            log.reopen()

    def close(self) -> None:
        """Write what is buffered (blocking: call it from a thread)."""
        for log in self.logs:
            log.close()


def access_log_settings(
    default: AccessLogConfig | None, listeners: dict[str, AccessLogConfig | None]
) -> Settings | None:
    """What a config asks for; None when no access log is configured at all."""
    own = {name: config for name, config in listeners.items() if config is not None}
    if default is None and not own:
        return None
    return default, own


def open_access_logs(settings: Settings | None) -> AccessLogs | None:
    """The observer for ``settings`` (files opened: raises OSError)."""
    if settings is None:
        return None
    opened: list[AccessLog] = []

    def open_log(config: AccessLogConfig) -> AccessLog:
        log = AccessLog(config)
        opened.append(log)
        return log

    try:
        return AccessLogs(settings, open_log)
    except OSError:
        for log in opened:
            log.close()
        raise
