"""The gateway's own log: one handler, one format, one level for every logger.

Every module logs under ``meshgate.`` (``logging.getLogger(f"meshgate.{__name__}")``),
so ``meshgate`` is the one name to filter on. The handler sits on the root
logger: uvicorn's lines (``uvicorn.error``) and grpc's (the ``grpc`` logger)
propagate there and come out in the same format. grpc's C core writes to
stderr on its own, outside Python's logging, and its verbosity is
``GRPC_VERBOSITY``.

The level is set on the root logger, which every logger without a level of
its own follows, and on the handler, which every record passes;
:func:`set_level` changes it while the gateway runs (the admin
``/logging?level=`` endpoint calls it).

``text``: ``2026-12-02 13:28:10,123 WARNING meshgate.gateway.worker: message``.
``json``: one object per line: time, level, logger, message, pid, any
``extra=`` context the call passed, and the traceback (``exc``) if any.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

ROOT = "meshgate"
LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What a LogRecord always has; anything else on it came from ``extra=``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"
    format: str = "text"

    def over(self, fallback: LogSettings) -> LogSettings:
        """These settings where given (the command line), ``fallback`` elsewhere."""
        return LogSettings(self.level or fallback.level, self.format or fallback.format)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process or os.getpid(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return orjson.dumps(entry, default=str).decode()


def _iso_time(created: float) -> str:
    whole = int(created)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{int((created - whole) * 1000):03d}Z"


def formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        return JsonFormatter()
    if kind == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"unknown log format {kind!r}: use text or json")


def level_number(name_or_level: str | int) -> int:
    if isinstance(name_or_level, int) and not isinstance(name_or_level, bool):
        if name_or_level in LEVELS.values():
            return name_or_level
    elif isinstance(name_or_level, str) and name_or_level.strip().lower() in LEVELS:
        return LEVELS[name_or_level.strip().lower()]
    raise ValueError(f"unknown log level {name_or_level!r}: use one of {', '.join(LEVELS)}")


# The handler this module installed, replaced (not added to) on each configure.
_handler: logging.Handler | None = None


def configure(settings: LogSettings) -> None:
    """Send every log record to stderr in ``settings.format`` at ``settings.level``."""
    global _handler
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings.format))
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    else:
        # A handler set up before (basicConfig) would print every line twice.
        for old in list(root.handlers):
            root.removeHandler(old)
    root.addHandler(handler)
    _handler = handler
    set_level(settings.level)


def set_level(name_or_level: str | int) -> str:
    """Change the level of every logger that has none of its own (meshgate's,
    uvicorn's, grpc's) at run time; returns the level's name. Raises
    ValueError for an unknown level."""
    number = level_number(name_or_level)
    logging.getLogger().setLevel(number)
    logging.getLogger(ROOT).setLevel(logging.NOTSET)
    # Loggers with a level of their own (uvicorn's) still pass through the
    # handler: it filters too, so --log-level error hides their warnings.
    if _handler is not None:
        _handler.setLevel(number)
    return logging.getLevelName(number).lower()


def parse_level(text: str) -> str:
    """The level's canonical name, lower case ("warn" is "warning"); ValueError
    naming the choices otherwise."""
    name = text.strip().lower()
    return logging.getLevelName(level_number("warning" if name == "warn" else name)).lower()


def current_levels() -> dict[str, str]:
    """What /logging reports: one level for every logger of the gateway
    (meshgate.*, uvicorn's, grpc's), under the common name."""
    return {ROOT: current_level()}


def current_level() -> str:
    return logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
