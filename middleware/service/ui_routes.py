"""The tracing UI: a static page that draws the program API (``/kvbaton/v1/programs``).

Three files and a stylesheet under ``ui/``, served as they are; no CDN, no build step.
``trace.js`` holds the pure functions (timeline bars, graph layers), ``app.js`` the DOM.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

__all__ = ["add_ui_routes"]

_ASSETS = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "trace.js": "text/javascript",
    "style.css": "text/css",
}
_UI = files("kvbaton.middleware.service") / "ui"


async def ui_root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/kvbaton/ui/")


async def ui_asset(request: web.Request) -> web.Response:
    name = request.match_info.get("name") or "index.html"
    content_type = _ASSETS.get(name)
    if content_type is None:
        raise web.HTTPNotFound(text=f"no UI file {name!r}")
    body = (_UI / name).read_bytes()
    # Served from the package: a new version must not meet an old cached script.
    return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "no-cache"})


def add_ui_routes(app: web.Application) -> None:
    app.router.add_get("/kvbaton/ui", ui_root)
    app.router.add_get("/kvbaton/ui/", ui_asset)
    app.router.add_get("/kvbaton/ui/{name}", ui_asset)
