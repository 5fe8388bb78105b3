"""The config of the gateway's own logs, its access log and request IDs.

Kept apart from model.py (which imports these): the access log format is
compiled here once, at load, so a bad operator is a config error with its
place in the file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.access_log.format import FormatError, compile_format, status_range


class Model(BaseModel):
    # As model.py's Model (which imports this module, so cannot be imported here).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["text", "json"]


class LoggingConfig(Model):
    """The gateway's own log lines (stderr); ``--log-level``/``--log-format`` win."""

    level: LogLevel = "info"
    """Least severe level logged, for meshgate's loggers and uvicorn's and grpc's alike."""
    format: LogFormat = "text"
    """text: one readable line per record; json: one JSON object per line (time, level,
    logger, message, and the record's context)."""


class AccessLogConfig(Model):
    """One line per request, written off the event loop (docs/observability.md)."""

    path: str = Field(default="stdout", min_length=1)
    """stdout, stderr, or a file appended to (reopened on SIGUSR1, and when rotated away)."""
    format: str = Field(default="json", min_length=1)
    """json (one object per line), or an Envoy-style format string such as
    '%START_TIME% %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %DURATION%'."""
    sample: float = Field(default=1.0, ge=0.0, le=1.0)
    """The share of requests logged, 0.0 to 1.0 (chosen at random per request)."""
    only: str = "all"
    """Which requests by status: all, errors (>= 400), server_errors (>= 500), or a range
    such as 500-599."""
    buffer_lines: int = Field(default=10_000, ge=1, le=1_000_000)
    """Lines held for the writer thread; past this, lines are dropped and counted, never
    waited for."""

    @field_validator("format")
    @classmethod
    def _compiles(cls, value: str) -> str:
        if value != "json":
            try:
                compile_format(value)
            except FormatError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("only")
    @classmethod
    def _status_filter(cls, value: str) -> str:
        try:
            status_range(value)
        except FormatError as exc:
            raise ValueError(str(exc)) from None
        return value


class RequestIdConfig(Model):
    """The request ID: kept or made, sent upstream, returned, logged (docs/observability.md)."""

    enabled: bool = True
    """Give every request an ID; false: no ID is read, made, sent or returned."""
    header: str = Field(default="x-request-id", pattern=r"^[a-z0-9][a-z0-9._-]*$")
    """The header (lower case) that carries the ID in, upstream as metadata, and back out."""
    trust_client: bool = True
    """Keep an ID the client sent when it is sane (1 to 128 visible ASCII characters);
    false: always make a new one."""
    response: bool = True
    """Return the ID to the client as a response header."""
