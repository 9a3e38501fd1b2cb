"""The deliveries page (SPEC §8a): static files served from this folder under ``/ui/``.

The page is plain HTML, CSS and native JavaScript modules (``main.js`` imports the rest)
with no build step and no asset from outside the daemon; it reads the admin API (``/v1/…``)
from the browser. The ``/ui/`` routes need no token: the page asks for one when an API
call answers 401.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aiohttp import web

UI_DIR = Path(__file__).resolve().parent

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",  # a module script under any other type is refused
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# Everything the page loads comes from the daemon itself; a response body shown on the
# page can never run script or pull anything in.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def assets(folder: Path = UI_DIR) -> dict[str, Path]:
    """The files the page may load, by name: only this folder's own files of a known type."""
    return {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix in CONTENT_TYPES}


def add_routes(app: web.Application) -> None:
    """Register ``GET /`` and ``GET /ui`` (redirects), ``GET /ui/`` and ``GET /ui/{name}`` on ``app``."""
    files = assets()

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/ui/")

    async def index(request: web.Request) -> web.StreamResponse:
        return _serve(request, files["index.html"])

    async def asset(request: web.Request) -> web.StreamResponse:
        # A lookup in the fixed table of names, never a path join: nothing outside the
        # folder (``..``, encoded slashes, absolute paths) can be reached.
        path = files.get(request.match_info["name"])
        if path is None:
            return web.Response(status=404, text="not found\n", headers={"Cache-Control": "no-cache"})
        return _serve(request, path)

    # The root has nothing of its own: someone opening the daemon's address wants the page.
    app.router.add_get("/", redirect)
    app.router.add_get("/ui", redirect)
    app.router.add_get("/ui/", index)
    app.router.add_get("/ui/{name}", asset)


def _serve(request: web.Request, path: Path) -> web.Response:
    """One file with its content type, ``Cache-Control: no-cache`` and an ETag for 304s."""
    body = path.read_bytes()  # a few kB: read each time, so an upgrade shows on reload
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "Content-Type": CONTENT_TYPES[path.suffix],
        "Cache-Control": "no-cache",
        "ETag": etag,
        **SECURITY_HEADERS,
    }
    if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
        headers.pop("Content-Type")
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers)
