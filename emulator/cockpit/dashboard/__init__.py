"""The dashboard: static files shipped in the package (no CDN, no build step), served at `/_emu/`.

The page gets everything over `GET /_emu/events?stream=1` and acts through the control API."""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import web

FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "load.js": "text/javascript; charset=utf-8",  # a running `emu load`, drawn
    "icon.svg": "image/svg+xml",
}


@functools.cache
def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


async def index(request: web.Request) -> web.StreamResponse:
    return _file("index.html")


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["file"]
    if name not in FILES:
        raise web.HTTPNotFound()
    return _file(name)


async def redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/_emu/")


def _file(name: str) -> web.Response:
    return web.Response(
        body=_read(name), headers={"Content-Type": FILES[name], "Cache-Control": "no-cache"}
    )
