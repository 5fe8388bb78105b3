"""API key authentication: 401 without a key, 403 with one that is not known.

Keys come from a file (one a line; ``#`` comments and blank lines skipped)
or an environment variable (comma-separated), or both. Only their SHA-256
digests are kept in memory, so a heap dump or a ``/config_dump`` shows no
key; a line may also be a digest already (``sha256:<hex>``), so the file
need not hold a key in clear. A presented key is hashed and looked up, which
takes the same time whichever key it resembles.

The key is removed from the request before it goes upstream unless
``forward: true``. A line may name its key (``name=key`` or
``name=sha256:<hex>``); the name of the key used is then sent upstream in
``name_header`` (a header of that name from the client is always removed).

Config (YAML)::

    - name: api_key
      config:
        keys_file: secrets/api-keys.txt
        keys_env: MESHGATE_API_KEYS
        from: [{header: x-api-key}, {query: api_key}]
        name_header: x-api-key-name
"""

from __future__ import annotations

import hashlib
import os
import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

from filters.credentials import (
    LocationConfig,
    find_credential,
    with_headers,
    without_credential,
    without_headers,
)
from filters.errors import PERMISSION_DENIED, UNAUTHENTICATED, error_response
from filters.http import Filter, Handler, HttpRequest, HttpResponse
from filters.settings import FilePath, HeaderName

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_NAME = re.compile(r"^([A-Za-z0-9_.-]+)=(.+)$")


class Config(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )

    keys_file: FilePath | None = None
    """A file of keys, one per line (NAME=KEY, or sha256:DIGEST)."""
    keys_env: str | None = None
    """An environment variable holding the keys, comma-separated."""
    locations: list[LocationConfig] = Field(
        default_factory=lambda: [LocationConfig(header="x-api-key")], alias="from", min_length=1
    )
    """Where the key is looked for, in order (YAML key: from)."""
    forward: bool = False
    """Keep the key on the request to the upstream."""
    name_header: HeaderName | None = None
    """A header set upstream to the name of the key that matched."""

    @model_validator(mode="after")
    def _some_keys(self) -> Config:
        if self.keys_file is None and self.keys_env is None:
            raise ValueError("give keys_file, keys_env, or both")
        return self


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def parse_keys(lines: list[str], where: str) -> dict[str, str]:
    """Digest -> the key's name ("" when unnamed)."""
    keys: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name = ""
        named = _NAME.match(text)
        if named is not None and not text.startswith("sha256:"):
            name, text = named.group(1), named.group(2)
        found = _DIGEST.match(text)
        if text.startswith("sha256:") and found is None:
            raise ValueError(f"{where} entry {number}: sha256: needs 64 lower-case hex digits")
        keys[found.group(1) if found else digest(text)] = name
    return keys


def load_keys(config: Config) -> dict[str, str]:
    keys: dict[str, str] = {}
    if config.keys_file is not None:
        keys.update(parse_keys(config.keys_file.read_text().splitlines(), str(config.keys_file)))
    if config.keys_env is not None:
        value = os.environ.get(config.keys_env)
        if value is None:
            raise ValueError(f"environment variable {config.keys_env} is not set")
        keys.update(parse_keys(value.split(","), f"${config.keys_env}"))
    if not keys:
        raise ValueError("no API keys configured (the file and variable are empty)")
    return keys


def build(config: Config) -> Filter:
    keys = load_keys(config)
    locations = tuple(config.locations)
    owned = frozenset([config.name_header] if config.name_header else [])

    def api_key(next_handler: Handler) -> Handler:
        async def handle(request: HttpRequest) -> HttpResponse:
            request = without_headers(request, owned)
            found = find_credential(request, locations)
            if found is None:
                return error_response(
                    401,
                    UNAUTHENTICATED,
                    "API key is missing",
                    [("www-authenticate", 'ApiKey realm="meshgate"')],
                )
            name = keys.get(digest(found.value))
            if name is None:
                return error_response(403, PERMISSION_DENIED, "API key is not valid")
            if not config.forward:
                request = without_credential(request, found.location)
            if config.name_header and name:
                request = with_headers(request, [(config.name_header, name)])
            return await next_handler(request)

        return handle

    return api_key
