"""The config's JSON Schema (``meshgate schema``) against the YAML the project ships.

Every config under config/ and every YAML example in the README must be valid
against the schema an editor would use, and mistakes the gateway rejects
(an empty file, a bad duration, a filter key that filter does not have) must
be rejected by the schema too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gateway.config import ConfigError
from gateway.config.load import load_config_text, read_yaml
from gateway.config.schema import config_schema

REPO = Path(__file__).resolve().parents[2]
SCHEMA = config_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

SHIPPED = sorted({p.resolve() for p in (REPO / "config").rglob("*.yaml")})
README_EXAMPLES = re.findall(r"```ya?ml\n(.*?)```", (REPO / "README.md").read_text(), re.S)

MINIMAL: dict[str, Any] = {
    "listeners": [
        {
            "name": "public",
            "address": "127.0.0.1:8080",
            "routes": [
                {"match": {"prefix": "/"}, "transcode": {"auto_mapping": True}, "cluster": "c"}
            ],
        }
    ],
    "clusters": [{"name": "c", "endpoints": [{"address": "127.0.0.1:50051"}]}],
}


def errors(document: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(document)]


def test_the_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = json.loads((REPO / "config" / "schema.json").read_text())
    assert committed == json.loads(json.dumps(SCHEMA)), "run: meshgate schema > config/schema.json"


def properties(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property definition, except inside if/then (which only select)."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{where}.{name}", prop
        for key, value in node.items():
            if key not in ("if", "then"):
                yield from properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from properties(value, f"{where}[{i}]")


def test_every_field_has_a_description() -> None:
    found = list(properties(SCHEMA))
    assert len(found) > 80
    missing = [where for where, prop in found if not prop.get("description")]
    assert missing == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_config_is_valid(path: Path) -> None:
    assert errors(read_yaml(path.read_text())) == []


def test_the_readme_has_yaml_examples() -> None:
    assert len(README_EXAMPLES) >= 3


@pytest.mark.parametrize("example", README_EXAMPLES, ids=lambda t: t.split("\n")[0][:40])
def test_every_readme_example_is_valid(example: str) -> None:
    assert errors(read_yaml(example)) == []


@pytest.mark.parametrize("document", [None, {}, {"admin": {"address": "127.0.0.1:9901"}}])
def test_a_config_without_listeners_is_an_error(document: Any) -> None:
    assert errors(document)
    text = "" if document is None else json.dumps(document)
    with pytest.raises(ConfigError) as raised:
        load_config_text(text, base_dir=REPO)
    assert "listeners" in str(raised.value)
    if document is None or "listeners" not in document:
        assert "a config serves at least one listener" in str(raised.value)


def with_timeout(timeout: Any) -> dict[str, Any]:
    listener = MINIMAL["listeners"][0]
    route = {**listener["routes"][0], "timeout": timeout}
    return {**MINIMAL, "listeners": [{**listener, "routes": [route]}]}


def test_durations_and_addresses_are_the_strings_users_write() -> None:
    for timeout in ("5s", "250ms", "1.5m", "2h", "100us", 3, 0.5):
        assert errors(with_timeout(timeout)) == [], timeout
    for timeout in ("soon", "5 parsecs", "-1s", -1, True):
        assert errors(with_timeout(timeout)), timeout
    for address in ("127.0.0.1:8080", "[::1]:8080", "localhost:1", "0.0.0.0:65535"):
        assert errors({**MINIMAL, "admin": {"address": address}}) == [], address
    for address in ("127.0.0.1", ":8080", "8080", "host:port", "a b:80"):
        assert errors({**MINIMAL, "admin": {"address": address}}), address


def with_filter(name: str, config: dict[str, Any]) -> dict[str, Any]:
    first = MINIMAL["listeners"][0]
    listener = {**first, "filters": [{"name": name, "config": config}]}
    return {**MINIMAL, "listeners": [listener]}


def test_each_filter_config_is_checked_by_its_name() -> None:
    assert errors(with_filter("rate_limit", {"requests_per_second": 10, "burst": 20})) == []
    assert errors(with_filter("cors", {"allow_origins": ["https://a.example"]})) == []
    # A key of another filter, a missing required key, an unknown filter.
    assert errors(with_filter("rate_limit", {"allow_origins": ["x"], "requests_per_second": 1}))
    assert errors(with_filter("rate_limit", {}))
    assert errors(with_filter("cors", {"requests_per_second": 1}))
    assert errors(with_filter("no_such_filter", {}))


def test_the_schema_and_the_loader_agree_on_the_shipped_configs() -> None:
    """What the schema accepts, the loader accepts (before descriptors are read)."""
    for path in SHIPPED:
        load_config_text(path.read_text(), base_dir=path.parent)
