"""Tracing: W3C Trace Context propagation and OpenTelemetry spans over OTLP.

    context.py    traceparent / tracestate, sans-IO
    tracer.py     the worker's tracer and each request's trace (span ids, sampling)
    otlp.py       spans built from the finished Exchange, exported by the SDK (otel extra)
    available.py  whether the otel extra is installed, for the config's check

See docs/observability.md.
"""
