"""``meshgate routes``: the compiled route table, or where one request would go.

Both answers come from the snapshot the gateway itself would serve (the same
route matches, the same transcoding tables), so what this prints is what the
router does, not a re-implementation of it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from google.protobuf.descriptor_pool import DescriptorPool

from gateway.config import ConfigError, ListenerConfig, RouteConfig
from gateway.snapshot import CompiledListener, CompiledRoute, Snapshot
from gateway.transcode.http_rule import rules_for_method
from gateway.transcode.protobuf_kind import ProtobufTranscoding


def run_routes(args: argparse.Namespace) -> int:
    from gateway.sources import load_snapshot

    try:
        snapshot = load_snapshot(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid config\n{exc}", file=sys.stderr)
        return 1
    listeners = _listeners(snapshot, args.listener)
    if listeners is None:
        print(f"no listener named {args.listener!r}", file=sys.stderr)
        return 2
    if args.method is None:
        table = [route_table(snapshot, config, compiled) for config, compiled in listeners]
        print(json.dumps(table, indent=2) if args.json else table_text(table), end="")
        return 0
    if args.path is None:
        print("give both METHOD and PATH, or neither", file=sys.stderr)
        return 2
    headers = _headers(args.header)
    answers = [
        explain(config, compiled, args.method, args.path, headers) for config, compiled in listeners
    ]
    if args.json:
        print(json.dumps(answers if len(answers) > 1 else answers[0], indent=2))
    else:
        print("\n".join(explain_text(answer) for answer in answers), end="")
    return 0 if any(a["route"] is not None for a in answers) else 1


def _listeners(
    snapshot: Snapshot, name: str | None
) -> list[tuple[ListenerConfig, CompiledListener]] | None:
    pairs = list(zip(snapshot.config.listeners, snapshot.listeners, strict=True))
    if name is None:
        return pairs
    chosen = [pair for pair in pairs if pair[0].name == name]
    return chosen or None


def _headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, _, text = value.partition(":")
        headers[name.strip().lower()] = text.strip()
    return headers


# --- the table ---------------------------------------------------------------------


def route_table(
    snapshot: Snapshot, listener: ListenerConfig, compiled: CompiledListener
) -> dict[str, Any]:
    routes = []
    for config, (_, route) in zip(listener.routes, compiled.routes.entries, strict=True):
        routes.append(
            {
                "route": route.name,
                "match": _match_text(config),
                "cluster": route.cluster.name,
                "upstream": route.upstream,
                "timeout": route.timeout,
                "bindings": _bindings(config, snapshot.pool),
            }
        )
    return {
        "listener": listener.name,
        "address": listener.address,
        "filters": list(compiled.filter_names),
        "routes": routes,
    }


def _match_text(route: RouteConfig) -> str:
    match = route.match
    parts = []
    if match.prefix is not None:
        parts.append(f"prefix {match.prefix}")
    elif match.path is not None:
        parts.append(f"path {match.path}")
    else:
        parts.append(f"regex {match.regex}")
    if match.methods:
        parts.append("methods " + ",".join(match.methods))
    parts.extend(f"header {h.name}" for h in match.headers)
    parts.extend(f"query {q.name}" for q in match.query)
    return "; ".join(parts)


def _bindings(route: RouteConfig, pool: DescriptorPool) -> list[dict[str, str]]:
    """What the route serves: its google.api.http bindings, then auto-mapped methods."""
    if route.dubbo is not None:
        interface = route.dubbo.interface or "{interface}"
        method = route.dubbo.method or "{method}"
        return [{"http": f"POST /{interface}/{method}", "rpc": "Dubbo generic call (JSON)"}]
    transcode = route.transcode
    assert transcode is not None
    found: list[dict[str, str]] = []
    for name in transcode.services:
        service = _service(pool, name)
        if service is None:
            continue
        for method in service.methods:
            for rule in rules_for_method(method):
                entry = {
                    "http": f"{rule.http_method} {rule.template}",
                    "rpc": f"{service.full_name}/{method.name}",
                }
                if rule.body:
                    entry["body"] = rule.body
                if rule.response_body:
                    entry["response_body"] = rule.response_body
                found.append(entry)
    if transcode.auto_mapping:
        if transcode.services:
            found.extend(
                {"http": "POST /" + name + "/{method}", "rpc": f"{name} (auto_mapping)"}
                for name in transcode.services
            )
        else:
            found.append(
                {"http": "POST /{service}/{method}", "rpc": "every service (auto_mapping)"}
            )
    return found


def _service(pool: DescriptorPool, name: str) -> Any:
    try:
        return pool.FindServiceByName(name)
    except KeyError:
        return None


def table_text(table: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for listener in table:
        filters = ", ".join(listener["filters"]) or "none"
        lines.append(
            f"listener {listener['listener']} on {listener['address']} (filters: {filters})"
        )
        for i, route in enumerate(listener["routes"]):
            lines.append(
                f"  {i}. {route['route']}: {route['match']} -> {route['cluster']} "
                f"({route['upstream']}, timeout {route['timeout']}s)"
            )
            for binding in route["bindings"]:
                extra = ""
                if "body" in binding:
                    extra += f" body={binding['body']}"
                if "response_body" in binding:
                    extra += f" response_body={binding['response_body']}"
                lines.append(f"       {binding['http']:<44} {binding['rpc']}{extra}")
    return "\n".join(lines) + "\n"


# --- one request ---------------------------------------------------------------------


def explain(
    listener: ListenerConfig,
    compiled: CompiledListener,
    method: str,
    target: str,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """Which route, RPC, variable bindings and cluster ``method target`` reaches."""
    method = method.upper()
    parts = urlsplit(target)
    path, query = parts.path or "/", parts.query
    answer: dict[str, Any] = {
        "listener": listener.name,
        "request": f"{method} {target}",
        "route": None,
    }
    route = compiled.routes.find(method, path, headers, query.encode("latin-1"))
    if route is None:
        answer["result"] = "no route matches: 404"
        return answer
    answer.update(route=route.name, cluster=route.cluster.name, upstream=route.upstream)
    answer.update(_rpc(route, method, path, query))
    return answer


def _rpc(route: CompiledRoute, method: str, path: str, query: str) -> dict[str, Any]:
    kind = route.kind
    if not isinstance(kind, ProtobufTranscoding):
        return {"rpc": "Dubbo generic call, interface and method from the path"}
    transcoding = kind.transcoding
    auto = transcoding.methods.get(path)
    if auto is not None and method == "POST":
        return {"rpc": f"{auto.service}/{auto.method}", "by": "auto_mapping", "body": "*"}
    match = transcoding.rest.lookup(method, path, query) if transcoding.rest else None
    if match is None:
        return {"rpc": None, "result": "the route matches but no binding does: 404 or 405"}
    rest = match.payload
    return {
        "rpc": f"{rest.method.service}/{rest.method.method}",
        "by": f"google.api.http {rest.http_method} {rest.template}",
        # A list, not a mapping: a repeated query parameter binds one field twice.
        "bindings": [{"field": ".".join(b.field_path), "value": b.value} for b in match.bindings],
        "body": rest.body or None,
        "response_body": rest.response_body or None,
    }


def explain_text(answer: dict[str, Any]) -> str:
    lines = [f"{answer['request']} on listener {answer['listener']}:"]
    if answer["route"] is None:
        lines.append(f"  {answer['result']}")
        return "\n".join(lines) + "\n"
    lines.append(f"  route     {answer['route']}")
    lines.append(f"  cluster   {answer['cluster']} ({answer['upstream']})")
    if answer.get("rpc") is None:
        lines.append(f"  {answer['result']}")
        return "\n".join(lines) + "\n"
    lines.append(f"  rpc       {answer['rpc']}")
    if "by" in answer:
        lines.append(f"  by        {answer['by']}")
    for binding in answer.get("bindings") or ():
        lines.append(f"  binding   {binding['field']} = {binding['value']!r}")
    if answer.get("body"):
        lines.append(f"  body      {answer['body']}")
    if answer.get("response_body"):
        lines.append(f"  response  {answer['response_body']}")
    return "\n".join(lines) + "\n"
