"""The read-only status page at the admin's ``/``: plain HTML, CSS and JS
shipped in the package (``gateway/admin_static``), no external assets. The
script fetches the admin's JSON endpoints every 2 s and redraws; the page is
served with a Content-Security-Policy that allows nothing but those files and
those fetches from the admin itself."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Same-origin script, style and fetches only: no inline code, no frames, no forms.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSETS = {
    "/": ("status.html", "text/html; charset=utf-8"),
    "/status.js": ("status.js", "text/javascript; charset=utf-8"),
    "/status.css": ("status.css", "text/css; charset=utf-8"),
}


@cache
def _asset(name: str) -> bytes:
    return files("gateway").joinpath("admin_static", name).read_bytes()


async def _serve(request: Request) -> Response:
    name, media_type = _ASSETS[request.url.path]
    return Response(
        _asset(name),
        200,
        media_type=media_type,
        headers={
            "content-security-policy": CSP,
            "x-content-type-options": "nosniff",
            "cache-control": "no-cache",
            "referrer-policy": "no-referrer",
        },
    )


async def _no_icon(request: Request) -> Response:
    # Browsers ask for one; an empty answer keeps a 404 out of their console.
    return Response(b"", 204)


def page_routes() -> list[Route]:
    return [*(Route(path, _serve) for path in _ASSETS), Route("/favicon.ico", _no_icon)]
