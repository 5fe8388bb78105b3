"""Tracebacks of unexpected errors, at most once per kind per interval.

A client that can trigger an unexpected error can trigger it on every
request; a 100 KB traceback per request fills disks and hides everything
else. The first of a kind is logged in full, the repeats within the interval
are counted and the count is told with the next full report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

INTERVAL = 60.0
# Kinds remembered; past it the oldest are forgotten (and may log again).
MAX_KINDS = 256


class ThrottledLog:
    def __init__(
        self,
        log: logging.Logger,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        # kind -> (when last logged in full, repeats not logged since)
        self._seen: dict[tuple[str, str, int], tuple[float, int]] = {}

    def report(self, exc: BaseException, doing: str) -> bool:
        """Log ``exc`` with its traceback unless its kind was logged lately;
        True if it was logged."""
        kind = _kind(exc)
        now = self._clock()
        last = self._seen.get(kind)
        if last is not None and now - last[0] < self._interval:
            self._seen[kind] = (last[0], last[1] + 1)
            return False
        repeats = last[1] if last is not None else 0
        self._seen.pop(kind, None)
        if len(self._seen) >= MAX_KINDS:
            del self._seen[next(iter(self._seen))]
        self._seen[kind] = (now, 0)
        suffix = f" ({repeats} more like it since the last report)" if repeats else ""
        self._log.error("unexpected error %s%s", doing, suffix, exc_info=exc)
        return True


def _kind(exc: BaseException) -> tuple[str, str, int]:
    """The exception type and the place it was raised."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return (type(exc).__qualname__, "", 0)
    return (type(exc).__qualname__, tb.tb_frame.f_code.co_filename, tb.tb_lineno)
