"""The log level of meshgate's own loggers, changed at run time by ``/logging``.

A stand-in until the logging setup (``--log-level``, ``--log-format``) lands:
it provides ``set_level``, which the admin calls in every worker.
"""

from __future__ import annotations

import logging

# The packages whose loggers /logging changes (and "meshgate", the common name).
LOGGERS = ("gateway", "mesh", "filters", "meshgate")
LEVELS = ("debug", "info", "warning", "error", "critical")


def parse_level(text: str) -> str:
    """The level's canonical name; ValueError naming the choices otherwise."""
    level = text.strip().lower()
    if level == "warn":
        level = "warning"
    if level not in LEVELS:
        raise ValueError(f"unknown log level {text!r}; one of: {', '.join(LEVELS)}")
    return level


def set_level(level: str) -> None:
    number = logging.getLevelName(parse_level(level).upper())
    for name in LOGGERS:
        logging.getLogger(name).setLevel(number)


def current_levels() -> dict[str, str]:
    """Each logger's effective level, by name (lower case, as /logging takes them)."""
    return {
        name: logging.getLevelName(logging.getLogger(name).getEffectiveLevel()).lower()
        for name in LOGGERS
    }
