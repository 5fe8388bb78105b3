"""Secrets out of what the admin endpoint shows, sans-IO.

/config_dump shows the effective config, and filter configs may hold
credentials: an HMAC secret, a header value set to a token, a password in a
URL. Values under a sensitive key are replaced with ``[redacted]``; the
``*_file`` and ``*_env`` keys that say *where* a secret is stay visible, as
they are what an operator debugs. Redaction is by key name, so a new filter
naming its secret ``secret``, ``password``, ``token`` or ``*_key`` is covered.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"
# Whole key names (lower-case) whose value is a credential.
_SENSITIVE_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "keys",
        "credentials",
        "private_key",
        "client_secret",
    }
)
_SENSITIVE_PARTS = re.compile(r"secret|password|passwd|token|api_?key", re.IGNORECASE)
_REFERENCE = re.compile(r"_(file|env|header|path|name)$")


def is_sensitive(key: str) -> bool:
    lowered = key.lower()
    if _REFERENCE.search(lowered):
        return False
    return lowered in _SENSITIVE_NAMES or bool(_SENSITIVE_PARTS.search(lowered))


def redact(value: Any) -> Any:
    """A copy of ``value`` (JSON-shaped) with sensitive entries replaced."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if is_sensitive(str(k)) and v not in (None, "", [], {}) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and "@" in value and "://" in value:
        return _without_password(value)
    return value


def _without_password(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:{REDACTED}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
