"""Whether OTLP export can work here: the ``otel`` extra, importable as a whole."""

from __future__ import annotations

import importlib

EXTRA_HINT = "pip install 'meshgate[otel]'"
# xds-protos (a meshgate dependency) ships an old copy of the same
# opentelemetry/proto modules; installed after opentelemetry-proto it replaces
# them, and the exporter fails to import (grpc/grpc#42926).
PROTO_HINT = (
    "its opentelemetry-proto modules were overwritten by xds-protos' older copy; "
    "reinstall them: pip install --force-reinstall --no-deps opentelemetry-proto"
)


def otlp_unavailable() -> str | None:
    """Why spans cannot be exported over OTLP here, or None if they can."""
    try:
        importlib.import_module("opentelemetry.sdk.trace")
    except ImportError:
        return f"tracing.otlp needs the otel extra ({EXTRA_HINT})"
    try:
        importlib.import_module("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
    except ImportError as exc:
        if "opentelemetry.proto" in str(exc) or "InstrumentationScope" in str(exc):
            return f"tracing.otlp cannot load the OTLP exporter: {PROTO_HINT}"
        return f"tracing.otlp needs the OTLP exporter of the otel extra ({EXTRA_HINT}): {exc}"
    return None
