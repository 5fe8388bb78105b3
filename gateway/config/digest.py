"""One digest of a running config, the same on /version, /config_dump and /metrics."""

from __future__ import annotations

import hashlib

import orjson

from gateway.config.model import GatewayConfig


def config_hash(config: GatewayConfig) -> str:
    """sha256 of the config as loaded (canonical JSON), not of the file as it is now."""
    canonical = orjson.dumps(config.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()
