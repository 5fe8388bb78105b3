"""Filter chains: which filters a route runs, and how they wrap its handler.

The chain runs after route matching (as Envoy's HTTP filters run once the
route is known), so each route has a chain of its own: the listener's
filters, changed by the route's ``filters`` (override a config, disable,
add). A request that matches no route runs the listener's chain around the
404, so a CORS preflight or a rate limit still applies to it.

Sans-IO: the specs are computed from the config alone; building a filter
from a spec is the snapshot's job (it keeps instances across reloads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from filters.http import Filter, Handler
from gateway.config import ConfigIssue, FilterConfig, RouteFilterConfig

Where = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """One filter of a chain: its name, its effective config, and where it came from."""

    name: str
    config: dict[str, Any]
    where: Where


def route_filter_specs(
    listener_filters: Sequence[FilterConfig],
    route_filters: Sequence[RouteFilterConfig],
    listener_where: Where,
    route_where: Where,
    issues: list[ConfigIssue],
) -> list[FilterSpec]:
    """The route's chain, in request order.

    An override replaces the named top-level keys of the listener filter's
    config (a shallow merge: a route that needs other ``providers`` gives the
    whole list). An override or a ``disabled`` naming a filter the listener
    does not have is an error for ``disabled`` (it would silently do nothing)
    and an addition otherwise.
    """
    on_listener = {f.name for f in listener_filters}
    changes: dict[str, RouteFilterConfig] = {}
    added: list[FilterSpec] = []
    for k, change in enumerate(route_filters):
        where = (*route_where, k)
        if change.name in changes or any(a.name == change.name for a in added):
            issues.append(ConfigIssue((*where, "name"), f"filter {change.name!r} is named twice"))
            continue
        if change.name in on_listener:
            changes[change.name] = change
        elif change.disabled:
            issues.append(
                ConfigIssue(
                    (*where, "disabled"),
                    f"the listener has no filter {change.name!r} to disable",
                )
            )
        else:
            added.append(FilterSpec(change.name, dict(change.config or {}), where))
    specs: list[FilterSpec] = []
    for k, spec in enumerate(listener_filters):
        override = changes.get(spec.name)
        if override is None:
            specs.append(FilterSpec(spec.name, spec.config, (*listener_where, k)))
        elif not override.disabled:
            merged = {**spec.config, **(override.config or {})}
            where = (*route_where, route_filters.index(override))
            specs.append(FilterSpec(spec.name, merged, where))
    return [*specs, *added]


def listener_filter_specs(
    listener_filters: Sequence[FilterConfig], listener_where: Where
) -> list[FilterSpec]:
    return [
        FilterSpec(spec.name, spec.config, (*listener_where, k))
        for k, spec in enumerate(listener_filters)
    ]


def wrap(filters: Sequence[Filter], terminal: Handler) -> Handler:
    """``terminal`` inside ``filters``: the first filter sees the request first
    and the response last (Envoy's order)."""
    handler = terminal
    for each in reversed(filters):
        handler = each(handler)
    return handler
