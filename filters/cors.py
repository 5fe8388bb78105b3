"""Cross-Origin Resource Sharing, with Envoy's CORS filter semantics.

* A preflight (OPTIONS carrying Origin and Access-Control-Request-Method) is
  answered here, without calling the next handler: 204 with the allow headers
  when the origin is allowed, 403 with a JSON error when it is not.
* An actual request from an allowed origin goes on; its response gets
  Access-Control-Allow-Origin, Vary: Origin and the expose headers.
* A request from an origin that is not allowed goes on untouched apart from
  Vary: Origin: the browser, not the gateway, withholds the response.
* A request without Origin is not a CORS request and passes untouched.

Config (YAML)::

    - name: cors
      config:
        allow_origins: ["https://shop.example", "regex:https://.*\\.example\\.com"]
        allow_origin_regex: ["https://[a-z]+\\.test"]
        allow_methods: [GET, POST]
        allow_headers: [content-type, authorization]
        expose_headers: [x-request-id]
        max_age: 600
        allow_credentials: true
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from filters.errors import PERMISSION_DENIED, error_response
from filters.http import Filter, Handler, HttpRequest, HttpResponse
from mesh.regex import Pattern, compile_regex

REGEX_PREFIX = "regex:"
# Headers this filter owns on a CORS response; an upstream's copies are replaced
# so the browser never sees two conflicting answers.
OWNED_RESPONSE_HEADERS = frozenset(
    {
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    allow_origins: list[str] = Field(default_factory=list)
    """Origins allowed exactly, or as ``regex:PATTERN``."""
    allow_origin_regex: list[str] = Field(default_factory=list)
    """Origins allowed when the whole origin matches one of these regular expressions."""
    allow_methods: list[str] = Field(default_factory=list)
    """Methods a preflight may ask for (Access-Control-Allow-Methods)."""
    allow_headers: list[str] = Field(default_factory=list)
    """Request headers a preflight may ask for (Access-Control-Allow-Headers)."""
    expose_headers: list[str] = Field(default_factory=list)
    """Response headers the browser may show to scripts (Access-Control-Expose-Headers)."""
    max_age: Annotated[int, Field(ge=0)] | None = None
    """Seconds a browser may cache a preflight answer (Access-Control-Max-Age)."""
    allow_credentials: bool = False
    """Allow cookies and credentials (Access-Control-Allow-Credentials: true)."""

    @field_validator("allow_origin_regex")
    @classmethod
    def _regexes_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            _compile(pattern)
        return patterns

    @field_validator("allow_origins")
    @classmethod
    def _origin_regexes_compile(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin.startswith(REGEX_PREFIX):
                _compile(origin.removeprefix(REGEX_PREFIX))
        return origins

    @field_validator("allow_methods", "allow_headers", "expose_headers")
    @classmethod
    def _tokens(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not an HTTP token")
        return names


def _compile(pattern: str) -> Pattern:
    # RE2 (linear time), as Envoy's safe_regex; RegexError is a ValueError.
    return compile_regex(pattern)


class OriginPolicy:
    """Which origins may read responses; compiled once per config load."""

    def __init__(self, config: Config) -> None:
        exact = [o for o in config.allow_origins if not o.startswith(REGEX_PREFIX)]
        patterns = [
            o.removeprefix(REGEX_PREFIX) for o in config.allow_origins if o.startswith(REGEX_PREFIX)
        ]
        patterns.extend(config.allow_origin_regex)
        self.any_origin = "*" in exact
        self.exact = frozenset(exact)
        self.patterns = tuple(_compile(p) for p in patterns)

    def allows(self, origin: str) -> bool:
        if self.any_origin or origin in self.exact:
            return True
        # Full match, as Envoy's safe_regex: "https://a.example.com.evil" must not pass.
        return any(p.fullmatch(origin) for p in self.patterns)


def build(config: Config) -> Filter:
    policy = OriginPolicy(config)
    preflight_headers = _preflight_headers(config)
    actual_headers = _actual_headers(config)

    def cors(next_handler: Handler) -> Handler:
        async def handle(request: HttpRequest) -> HttpResponse:
            origin = request.headers.get("origin")
            if origin is None:
                return await next_handler(request)
            allowed = policy.allows(origin)
            if _is_preflight(request):
                if not allowed:
                    return error_response(
                        403,
                        PERMISSION_DENIED,
                        "CORS origin not allowed",
                        [("vary", "Origin")],
                    )
                return HttpResponse(
                    status=204,
                    headers=[("access-control-allow-origin", origin), *preflight_headers],
                )
            response = await next_handler(request)
            if allowed:
                _decorate(response, origin, actual_headers)
            else:
                _add_vary_origin(response)
            return response

        return handle

    return cors


def _is_preflight(request: HttpRequest) -> bool:
    return request.method == "OPTIONS" and "access-control-request-method" in request.headers


def _preflight_headers(config: Config) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if config.allow_methods:
        headers.append(("access-control-allow-methods", ", ".join(config.allow_methods)))
    if config.allow_headers:
        headers.append(("access-control-allow-headers", ", ".join(config.allow_headers)))
    if config.max_age is not None:
        headers.append(("access-control-max-age", str(config.max_age)))
    if config.allow_credentials:
        headers.append(("access-control-allow-credentials", "true"))
    headers.append(("vary", "Origin"))
    return headers


def _actual_headers(config: Config) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if config.allow_credentials:
        headers.append(("access-control-allow-credentials", "true"))
    if config.expose_headers:
        headers.append(("access-control-expose-headers", ", ".join(config.expose_headers)))
    return headers


def _decorate(response: HttpResponse, origin: str, extra: list[tuple[str, str]]) -> None:
    # The origin is echoed even for "*": with credentials the browser rejects "*",
    # and without them echoing plus Vary: Origin is equally correct for caches.
    kept = [(n, v) for n, v in response.headers if n.lower() not in OWNED_RESPONSE_HEADERS]
    response.headers = [*kept, ("access-control-allow-origin", origin), *extra]
    _add_vary_origin(response)


def _add_vary_origin(response: HttpResponse) -> None:
    for name, value in response.headers:
        if name.lower() == "vary":
            varied = {v.strip().lower() for v in value.split(",")}
            if "origin" in varied or "*" in varied:
                return
    response.headers.append(("vary", "Origin"))
