"""HTTP filters, registered by name with a typed config.

Each filter module defines a pydantic ``Config`` model and a ``build(config)``
that returns a :data:`filters.http.Filter`. The registry maps the YAML name to
its module; an unknown name is a config error, reported with its place.
"""

from __future__ import annotations

import importlib
from typing import Any

import pydantic

from filters.http import Filter

REGISTRY: dict[str, str] = {
    "cors": "filters.cors",
    "rate_limit": "filters.rate_limit",
    "headers": "filters.headers",
}


class FilterConfigError(Exception):
    pass


def build_filter(name: str, config: dict[str, Any]) -> Filter:
    try:
        module = importlib.import_module(REGISTRY[name])
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise FilterConfigError(f"unknown filter {name!r} (known: {known})") from None
    try:
        typed = module.Config.model_validate(config)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise FilterConfigError(f"filter {name!r}: {problems}") from None
    built: Filter = module.build(typed)
    return built
