"""The dashboard: one HTML page at `/` and its few files under /dashboard/, shipped in the package
(taskservice/web). Both are open even with API_KEYS set: the page asks for a key, then sends it
with its /api/v1 requests."""

import re
from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
FILE_PREFIX = "/dashboard/"
# The page loads only its own files and talks only to this origin; no inline script or style.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The files change with the package: revalidate (ETag / Last-Modified) rather than cache stale ones.
    "Cache-Control": "no-cache",
}
FILE_NAME = re.compile(r"[a-z0-9_-]+\.(?:js|css|svg)")


async def dashboard_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "index.html", headers=SECURITY_HEADERS)


async def dashboard_file(request: web.Request) -> web.FileResponse:
    # Only plain names of the package's own files: no paths, so nothing outside WEB_DIR.
    name = request.match_info["name"]
    path = WEB_DIR / name
    if not FILE_NAME.fullmatch(name) or not path.is_file():
        raise web.HTTPNotFound(text="No such dashboard file.")
    return web.FileResponse(path, headers=SECURITY_HEADERS)


def add_dashboard_routes(app: web.Application) -> None:
    app.router.add_get("/", dashboard_page, name="dashboard.page")
    app.router.add_get(FILE_PREFIX + "{name}", dashboard_file, name="dashboard.file")
