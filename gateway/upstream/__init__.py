"""Upstream invokers: how the router reaches a backend, one module per protocol."""
