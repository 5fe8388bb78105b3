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
