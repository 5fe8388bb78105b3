"""HTTP filters, registered by name with a typed config.

Each filter module defines a pydantic ``Config`` model and a ``build(config)``
that returns a :data:`filters.http.Filter`. The registry maps the YAML name to
its module; an unknown name is a config error, reported with its place.

Third-party filters join through the ``meshgate.filters`` entry-point group:
an installed distribution declares ::

    [project.entry-points."meshgate.filters"]
    stamp = "my_package.stamp"     # a module (or object) with Config and build

and ``stamp`` becomes a filter name like the built-in ones. A built-in name
cannot be taken over by a plugin: the built-in wins and the plugin is
reported in the log, so installing a package never silently changes what
``jwt_auth`` or ``rbac`` means.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import pydantic

from filters.http import Filter

log = logging.getLogger(f"meshgate.{__name__}")

ENTRY_POINT_GROUP = "meshgate.filters"

REGISTRY: dict[str, str] = {
    "cors": "filters.cors",
    "rate_limit": "filters.rate_limit",
    "headers": "filters.headers",
    "jwt_auth": "filters.jwt_auth",
    "api_key": "filters.api_key",
    "ext_authz": "filters.ext_authz",
    "rbac": "filters.rbac",
}


class FilterFactory(Protocol):
    """What a filter module (or a plugin's object) provides."""

    Config: type[pydantic.BaseModel]

    def build(self, config: Any, /) -> Filter: ...


class FilterConfigError(Exception):
    pass


@cache
def plugin_filters() -> dict[str, str]:
    """Filter names from installed ``meshgate.filters`` entry points -> their import string.

    Read once per process: a package installed later needs a restart, as any
    Python import would.
    """
    found: dict[str, str] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in REGISTRY:
            log.warning(
                "filter plugin %r (%s) ignored: the name is a built-in filter",
                entry.name,
                entry.value,
            )
            continue
        found[entry.name] = entry.value
    return found


def available_filters() -> list[str]:
    """Every filter name a config may use: the built-ins and the installed plugins."""
    return sorted({*REGISTRY, *plugin_filters()})


def filter_factory(name: str) -> FilterFactory:
    if name in REGISTRY:
        factory: Any = importlib.import_module(REGISTRY[name])
        return factory  # type: ignore[no-any-return]
    plugins = plugin_filters()
    if name not in plugins:
        known = ", ".join(available_filters())
        raise FilterConfigError(f"unknown filter {name!r} (known: {known})")
    entry = next(e for e in entry_points(group=ENTRY_POINT_GROUP) if e.name == name)
    try:
        loaded: Any = entry.load()
    except Exception as exc:
        raise FilterConfigError(
            f"filter plugin {name!r} ({entry.value}) failed to load: {exc}"
        ) from exc
    if not (hasattr(loaded, "Config") and callable(getattr(loaded, "build", None))):
        raise FilterConfigError(
            f"filter plugin {name!r} ({entry.value}) has no Config model and build function"
        )
    return loaded  # type: ignore[no-any-return]


def build_filter(name: str, config: dict[str, Any], base_dir: Path | None = None) -> Filter:
    """Validate ``config`` and build the filter; relative paths in it are
    taken from ``base_dir`` (the config file's folder) by fields typed
    :data:`filters.settings.FilePath`."""
    factory = filter_factory(name)
    context = {"base_dir": base_dir} if base_dir is not None else None
    try:
        typed = factory.Config.model_validate(config, context=context)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise FilterConfigError(f"filter {name!r}: {problems}") from None
    except ValueError as exc:
        raise FilterConfigError(f"filter {name!r}: {exc}") from None
    try:
        built: Filter = factory.build(typed)
    except (OSError, ValueError) as exc:
        # Files a filter reads when it is built (keys, JWKS): reported as config
        # errors, so a bad reload keeps the last good snapshot.
        raise FilterConfigError(f"filter {name!r}: {exc}") from None
    return built
