"""Request and response header manipulation, like Envoy's route header options.

For each side, ``remove`` runs first, then ``set`` (replace every value of the
name), then ``add`` (append another value), Envoy's remove-before-add order.
Values may substitute, from the request as this filter received it:

* ``%REQ(name)%`` the request header's value (repeated headers joined by ',');
* ``%DOWNSTREAM_REMOTE_ADDRESS%`` the client's ``ip:port`` (``[ip]:port`` for IPv6);
* ``%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`` the client's ip;
* ``%%`` a literal ``%``.

As in Envoy (``keep_empty_value: false``), a header whose value comes out empty
is not written, so ``%REQ(x)%`` on a request without ``x`` leaves things as they were.

Config (YAML)::

    - name: headers
      config:
        request:
          set: {x-forwarded-client: "%DOWNSTREAM_REMOTE_ADDRESS%"}
          add: {x-tenant: "%REQ(x-api-key)%"}
          remove: [cookie]
        response:
          set: {cache-control: no-store}
          remove: [server]
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from filters.http import Filter, Handler, HttpRequest, HttpResponse

Headers = list[tuple[str, str]]
Part = Callable[[HttpRequest], str]
Template = Callable[[HttpRequest], str]

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+$")
_SUBSTITUTION = re.compile(
    r"%%|%REQ\(([!#$&'*+\-.^_`|~0-9A-Za-z]+)\)%"
    r"|%(DOWNSTREAM_REMOTE_ADDRESS|DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT)%"
)
_UNSAFE_VALUE_CHARS = frozenset("\r\n\0")


class HeaderMutation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    set: dict[str, str] = Field(default_factory=dict)
    """Headers set, replacing any value (values may use %REQ(name)% and the like)."""
    add: dict[str, str] = Field(default_factory=dict)
    """Headers appended beside any existing value."""
    remove: list[str] = Field(default_factory=list)
    """Headers removed."""

    @field_validator("set", "add")
    @classmethod
    def _valid_entries(cls, entries: dict[str, str]) -> dict[str, str]:
        checked = {_header_name(name): value for name, value in entries.items()}
        for value in checked.values():
            compile_template(value)
        return checked

    @field_validator("remove")
    @classmethod
    def _valid_names(cls, names: list[str]) -> list[str]:
        return [_header_name(name) for name in names]


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    request: HeaderMutation = Field(default_factory=HeaderMutation)
    """Changes to the request, before the router."""
    response: HeaderMutation = Field(default_factory=HeaderMutation)
    """Changes to the response, on its way back."""


def _header_name(name: str) -> str:
    lowered = name.lower()
    if not _HEADER_NAME.match(lowered):
        raise ValueError(f"{name!r} is not a valid header name")
    return lowered


def compile_template(value: str) -> Template:
    """Compile a header value once; raise ValueError on an unknown ``%...%``."""
    if any(c in _UNSAFE_VALUE_CHARS for c in value):
        raise ValueError(f"header value {value!r} contains CR, LF or NUL")
    parts: list[Part] = []
    position = 0
    for match in _SUBSTITUTION.finditer(value):
        parts.extend(_literals(value[position : match.start()]))
        parts.append(_substitution(match))
        position = match.end()
    parts.extend(_literals(value[position:]))
    if len(parts) == 1:
        return parts[0]
    return lambda request: "".join(part(request) for part in parts)


def _literals(text: str) -> list[Part]:
    if "%" in text:
        raise ValueError(f"unknown substitution in {text!r} (write %% for a literal %)")
    return [lambda request: text] if text else []


def _substitution(match: re.Match[str]) -> Part:
    header, address = match.group(1), match.group(2)
    if header is not None:
        name = header.lower()
        return lambda request: request.headers.get(name, "")
    if address == "DOWNSTREAM_REMOTE_ADDRESS":
        return _remote_address
    if address is not None:
        return lambda request: request.client[0] if request.client else ""
    return lambda request: "%"


def _remote_address(request: HttpRequest) -> str:
    if request.client is None:
        return ""
    host, port = request.client
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class CompiledMutation:
    def __init__(self, mutation: HeaderMutation) -> None:
        self.remove = frozenset(mutation.remove)
        self.set = {name: compile_template(value) for name, value in mutation.set.items()}
        self.add = {name: compile_template(value) for name, value in mutation.add.items()}

    def __bool__(self) -> bool:
        return bool(self.remove or self.set or self.add)

    def apply(self, headers: Headers, source: HttpRequest) -> Headers:
        """``headers`` changed, with values substituted from ``source``."""
        replaced = _written(self.set, source)
        appended = _written(self.add, source)
        dropped = self.remove | replaced.keys()
        kept = [(n, v) for n, v in headers if n.lower() not in dropped]
        return [*kept, *replaced.items(), *appended.items()]


def _written(templates: Mapping[str, Template], source: HttpRequest) -> dict[str, str]:
    values = {name: render(source) for name, render in templates.items()}
    return {name: value for name, value in values.items() if _writable(value)}


def _writable(value: str) -> bool:
    return bool(value) and not any(c in _UNSAFE_VALUE_CHARS for c in value)


def build(config: Config) -> Filter:
    on_request = CompiledMutation(config.request)
    on_response = CompiledMutation(config.response)

    def headers(next_handler: Handler) -> Handler:
        async def handle(request: HttpRequest) -> HttpResponse:
            received = request
            if on_request:
                request = dataclasses.replace(
                    request,
                    header_list=on_request.apply(request.header_list, received),
                    _headers=None,
                )
            response = await next_handler(request)
            if on_response:
                response.headers = on_response.apply(response.headers, received)
            return response

        return handle

    return headers
