"""Field types the filters' configs share: durations and header names.

Kept here, not imported from ``gateway.config``, so filters (built-in and
third-party alike) depend on ``filters`` alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationInfo, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+$")


def parse_duration(value: Any) -> float:
    """``5s``, ``250ms``, ``10m``, or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit, like 5s or 250ms")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"invalid duration {value!r}: use a number with a unit, like 5s")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def header_name(name: Any) -> str:
    if not isinstance(name, str) or not _HEADER_NAME.match(name.lower()):
        raise ValueError(f"{name!r} is not a valid header name")
    return name.lower()


# Described as the gateway's own durations are (gateway/config/model.py): the
# string users write, or a number of seconds.
_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
        {"type": "number", "minimum": 0, "description": "seconds"},
    ]
}
Duration = Annotated[
    float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA, mode="validation")
]
HeaderName = Annotated[str, BeforeValidator(header_name)]


def resolve_path(path: Path, info: ValidationInfo) -> Path:
    """A relative path is relative to the config file (passed as the
    validation context's ``base_dir``), as every path in the YAML is."""
    base_dir = (info.context or {}).get("base_dir")
    if path.is_absolute() or base_dir is None:
        return path
    return Path(base_dir) / path


# A file named in a filter's config; relative to the config file.
FilePath = Annotated[Path, AfterValidator(resolve_path)]
