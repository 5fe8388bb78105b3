"""The JSON Schema of the config file, as ``meshgate schema`` prints it.

pydantic writes the schema of :class:`GatewayConfig`; this adds what the
model cannot say by itself: a filter's ``config`` is checked against that
filter's own ``Config`` model, chosen by ``name`` (one ``if``/``then`` per
registered filter), so an editor flags a misspelt rate-limit key as surely as
``meshgate validate`` does.
"""

from __future__ import annotations

import importlib
from typing import Any

from filters import REGISTRY
from gateway.config.model import GatewayConfig

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_DEFS_REF = "#/$defs/"


def config_schema() -> dict[str, Any]:
    schema = GatewayConfig.model_json_schema()
    schema = {"$schema": SCHEMA_DIALECT, **schema}
    schema["title"] = "meshgate config"
    schema["description"] = "The meshgate gateway's YAML configuration (meshgate run -c FILE)."
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    _add_filter_schemas(defs)
    return schema


def _add_filter_schemas(defs: dict[str, Any]) -> None:
    filter_def = defs["FilterConfig"]
    filter_def["properties"]["name"]["enum"] = sorted(REGISTRY)
    branches: list[dict[str, Any]] = []
    for name in sorted(REGISTRY):
        model = importlib.import_module(REGISTRY[name]).Config
        own = model.model_json_schema(ref_template=_DEFS_REF + _prefix(name) + "{model}")
        for def_name, definition in own.pop("$defs", {}).items():
            defs[_prefix(name) + def_name] = definition
        own["title"] = f"{name} filter config"
        defs[_prefix(name) + "Config"] = own
        branches.append(
            {
                "if": {"properties": {"name": {"const": name}}, "required": ["name"]},
                "then": {"properties": {"config": {"$ref": f"{_DEFS_REF}{_prefix(name)}Config"}}},
            }
        )
    filter_def["allOf"] = branches


def _prefix(filter_name: str) -> str:
    """Definition names of one filter's models, kept apart from the gateway's own."""
    return "".join(part.title() for part in filter_name.split("_")) + "Filter"
