"""OpenAPI 3.1 documents generated from the descriptors and google.api.http rules.

:mod:`gateway.openapi.schemas` maps messages to JSON Schemas,
:mod:`gateway.openapi.document` builds one listener's document,
:mod:`gateway.openapi.serve` serves it (and a browsable page) on the listener,
:mod:`gateway.openapi.command` is ``meshgate openapi``.
"""
