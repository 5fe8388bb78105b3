"""Reading a config file: YAML -> GatewayConfig, or every error with its place.

An error's place is its path in the document (``listeners[0].routes[2].cluster``)
and, when the YAML has that node, its line, so ``meshgate validate`` can point
at the exact spot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml

from gateway.config.issues import ConfigError, ConfigIssue
from gateway.config.model import GatewayConfig
from gateway.config.references import check_references


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false.

    YAML 1.1 reads ``on``, ``off``, ``yes`` and ``no`` as booleans, which would
    turn the retry policy's ``on:`` key into ``True``.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def read_yaml(text: str) -> Any:
    """A YAML document as the gateway reads it (YAML 1.2 booleans)."""
    return yaml.load(text, Loader=_Yaml12Loader)


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    config: GatewayConfig
    base_dir: Path
    source: str

    def resolve(self, path: Path) -> Path:
        """Paths in the file are relative to the file's own directory."""
        return path if path.is_absolute() else self.base_dir / path


def load_config_file(path: Path) -> LoadedConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([ConfigIssue((), f"cannot read {path}: {exc.strerror}")]) from None
    return load_config_text(text, base_dir=path.resolve().parent, source=str(path))


def load_config_text(text: str, base_dir: Path, source: str = "<text>") -> LoadedConfig:
    try:
        root = yaml.compose(text, Loader=_Yaml12Loader)
        data = yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue((), f"not valid YAML: {problem}", line)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue((), "the file must be a mapping at the top level")])
    try:
        config = GatewayConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError([_issue_from_pydantic(e, root) for e in exc.errors()]) from None
    issues = check_references(config)
    if issues:
        raise ConfigError([_with_line(i, root) for i in issues])
    return LoadedConfig(config=config, base_dir=base_dir, source=source)


def _issue_from_pydantic(error: Any, root: yaml.Node | None) -> ConfigIssue:
    loc = tuple(error["loc"])
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key missing"
        if loc == ("listeners",):
            message += ": a config serves at least one listener"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return _with_line(ConfigIssue(loc, message), root)


def _with_line(issue: ConfigIssue, root: yaml.Node | None) -> ConfigIssue:
    node = _find_node(root, issue.path)
    if node is None:
        return issue
    return ConfigIssue(issue.path, issue.message, node.start_mark.line + 1)


def _find_node(node: yaml.Node | None, path: tuple[str | int, ...]) -> yaml.Node | None:
    """The deepest YAML node along ``path``: the key itself when it exists."""
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    node = value if part != path[-1] else key
                    break
            else:
                return node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node
