"""``/openapi.json`` (and a browsable page) on a listener that asks for it.

The document is generated from the snapshot the listener serves, on the
first request for it, and kept with that snapshot's handlers: a reload or a
reflection refresh builds new handlers, so the next request gets a document
of the new descriptors.

The page is Swagger UI when its assets were vendored into the package
(``scripts/vendor_swagger_ui.sh``, run by ``make``); without them it is a
plain HTML list of the operations, which needs nothing from outside.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

import orjson

from filters.http import Handler, HttpRequest, HttpResponse
from gateway.config.model import OpenApiConfig
from gateway.openapi.document import openapi_document
from gateway.snapshot import Snapshot

UI_PACKAGE = "gateway.openapi_ui"
UI_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
}


def serves(config: OpenApiConfig, request: HttpRequest) -> bool:
    """Whether the request is for the document or its page (so the listener's
    filters run for it once, before with_openapi answers)."""
    if request.method not in ("GET", "HEAD"):
        return False
    if request.path == config.path:
        return True
    ui = config.ui_path
    return ui is not None and (request.path == ui or request.path.startswith(ui.rstrip("/") + "/"))


def with_openapi(
    next_handler: Handler, snapshot: Snapshot, listener: str, config: OpenApiConfig
) -> Handler:
    document: bytes | None = None

    def rendered() -> bytes:
        nonlocal document
        if document is None:
            # A relative server: the document is right wherever the listener is reached.
            built = openapi_document(snapshot, listener, server_url="/", title=config.title)
            document = orjson.dumps(built)
        return document

    async def handler(request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            if request.path == config.path:
                return _ok("application/json", rendered())
            if config.ui_path is not None:
                if request.path == config.ui_path:
                    return _ok("text/html; charset=utf-8", _page(config, rendered()))
                asset = _asset(config.ui_path, request.path)
                if asset is not None:
                    return asset
        return await next_handler(request)

    return handler


def _ok(content_type: str, body: bytes) -> HttpResponse:
    return HttpResponse(200, [("content-type", content_type)], body)


def ui_assets_present() -> bool:
    try:
        return all(resources.files(UI_PACKAGE).joinpath(name).is_file() for name in UI_ASSETS)
    except ModuleNotFoundError:
        return False


def _asset(ui_path: str, path: str) -> HttpResponse | None:
    prefix = ui_path.rstrip("/") + "/"
    name = path.removeprefix(prefix) if path.startswith(prefix) else None
    if name not in UI_ASSETS or not ui_assets_present():
        return None
    body = resources.files(UI_PACKAGE).joinpath(name).read_bytes()
    return HttpResponse(
        200, [("content-type", UI_ASSETS[name]), ("cache-control", "max-age=3600")], body
    )


def _page(config: OpenApiConfig, document: bytes) -> bytes:
    title = html.escape(config.title)
    if ui_assets_present():
        assert config.ui_path is not None
        base = config.ui_path.rstrip("/")
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{base}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{base}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: {json.dumps(config.path)}, dom_id: "#swagger-ui"}});
</script></body></html>
""".encode()
    return _plain_page(title, config.path, orjson.loads(document))


def _plain_page(title: str, document_path: str, document: dict[str, Any]) -> bytes:
    rows = []
    for path, item in document.get("paths", {}).items():
        for verb, operation in item.items():
            rows.append(
                f"<tr><td>{verb.upper()}</td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(operation.get('summary', ''))}</td></tr>"
            )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>
<p>The OpenAPI document: <a href="{html.escape(document_path)}">{html.escape(document_path)}</a></p>
<table id="operations"><tr><th>method</th><th>path</th><th>summary</th></tr>
{"".join(rows)}
</table></body></html>
""".encode()
