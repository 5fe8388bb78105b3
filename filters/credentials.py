"""Where a credential (a JWT, an API key) is read from a request, sans-IO.

A location is a header (with an optional prefix such as ``Bearer ``, matched
without regard to case), a query parameter or a cookie. The first location
that holds a value wins. :func:`without_credential` removes what was read, so
the credential does not travel upstream unless asked.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from filters.http import HttpRequest

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+$")


class LocationConfig(BaseModel):
    """One place a credential may be: exactly one of header, query or cookie."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    header: str | None = None
    """Take the credential from this request header."""
    prefix: str = ""
    """Stripped from the header value; the value must start with it (any case)."""
    query: str | None = None
    """Take it from this query parameter."""
    cookie: str | None = None
    """Take it from this cookie."""

    @field_validator("header")
    @classmethod
    def _header_name(cls, name: str | None) -> str | None:
        if name is None:
            return None
        lowered = name.lower()
        if not _HEADER_NAME.match(lowered):
            raise ValueError(f"{name!r} is not a valid header name")
        return lowered

    @model_validator(mode="after")
    def _exactly_one(self) -> LocationConfig:
        given = [k for k in ("header", "query", "cookie") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of header, query or cookie")
        if self.prefix and self.header is None:
            raise ValueError("prefix goes with header")
        return self


@dataclasses.dataclass(frozen=True, slots=True)
class Found:
    value: str
    location: LocationConfig


def find_credential(request: HttpRequest, locations: Sequence[LocationConfig]) -> Found | None:
    """The first non-empty credential among ``locations``, or None."""
    for location in locations:
        value = _read(request, location)
        if value:
            return Found(value, location)
    return None


def _read(request: HttpRequest, location: LocationConfig) -> str | None:
    if location.header is not None:
        raw = request.headers.get(location.header)
        if raw is None:
            return None
        if location.prefix:
            if raw[: len(location.prefix)].lower() != location.prefix.lower():
                return None
            raw = raw[len(location.prefix) :]
        return raw.strip()
    if location.query is not None:
        for name, value in parse_qsl(request.query_string.decode("latin-1")):
            if name == location.query:
                return value
        return None
    assert location.cookie is not None
    for header in request.headers.get("cookie", "").split(";"):
        name, sep, value = header.strip().partition("=")
        if sep and name == location.cookie:
            return value.strip('"')
    return None


def without_credential(request: HttpRequest, location: LocationConfig) -> HttpRequest:
    """``request`` with the header or query parameter of ``location`` removed
    (a cookie stays: the Cookie header carries other cookies too)."""
    if location.header is not None:
        kept = [(n, v) for n, v in request.header_list if n != location.header]
        return dataclasses.replace(request, header_list=kept, _headers=None)
    if location.query is not None:
        pairs = parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True)
        query = urlencode([(n, v) for n, v in pairs if n != location.query])
        return dataclasses.replace(request, query_string=query.encode("latin-1"))
    return request


def without_headers(request: HttpRequest, names: frozenset[str]) -> HttpRequest:
    """``request`` without any header in ``names`` (lower-case)."""
    if not names or not any(n in names for n, _ in request.header_list):
        return request
    kept = [(n, v) for n, v in request.header_list if n not in names]
    return dataclasses.replace(request, header_list=kept, _headers=None)


def with_headers(request: HttpRequest, added: Sequence[tuple[str, str]]) -> HttpRequest:
    """``request`` with ``added`` replacing any header of the same names."""
    if not added:
        return request
    names = {n for n, _ in added}
    kept = [(n, v) for n, v in request.header_list if n not in names]
    return dataclasses.replace(request, header_list=[*kept, *added], _headers=None)


def appended_headers(request: HttpRequest, added: Sequence[tuple[str, str]]) -> HttpRequest:
    """``request`` with ``added`` after its headers (nothing replaced)."""
    if not added:
        return request
    return dataclasses.replace(request, header_list=[*request.header_list, *added], _headers=None)
