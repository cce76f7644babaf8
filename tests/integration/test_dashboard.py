"""The dashboard's page and files over plain HTTP: served from the package, open without a key,
under a strict Content-Security-Policy, and nothing else reachable through the file route."""

import dataclasses
import re

import pytest

from taskservice.api.app import create_app
from taskservice.api.dashboard import WEB_DIR

KEY = "dashboard-key-0123456789abcdef"


@pytest.fixture
async def secured(aiohttp_client, settings):
    return await aiohttp_client(create_app(dataclasses.replace(settings, api_keys=(KEY,))))


def referenced_files(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/dashboard/[^"]+)"', html)


async def test_page_is_served_at_the_root_with_a_strict_policy(client):
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    policy = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    html = await resp.text()
    assert "<title>taskservice dashboard</title>" in html


async def test_every_file_the_page_and_its_modules_load_is_served(client):
    html = await (await client.get("/")).text()
    files = referenced_files(html)
    assert "/dashboard/app.js" in files and "/dashboard/style.css" in files
    # The modules import each other by relative name: each import must resolve too.
    for module in WEB_DIR.glob("*.js"):
        files += [f"/dashboard/{name}" for name in re.findall(r'from "\./([^"]+)"', module.read_text())]
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in set(files):
        resp = await client.get(path)
        assert resp.status == 200, path
        expected = types[path[path.rindex("."):]]
        # Browsers accept either JavaScript type for modules; Python's mimetypes names one of them.
        assert resp.content_type in ((expected, "application/javascript") if expected == "text/javascript"
                                     else (expected,)), path
        assert await resp.read() == (WEB_DIR / path.removeprefix("/dashboard/")).read_bytes()


async def test_page_uses_no_other_origin(client):
    # No CDN, no external fonts: every URL in the page and its files is relative to this server.
    for path in WEB_DIR.iterdir():
        text = path.read_text()
        external = [url for url in re.findall(r"https?://[^\s\"')]+", text) if url != "http://www.w3.org/2000/svg"]
        assert not external, (path.name, external)


@pytest.mark.parametrize("path", [
    "/dashboard/missing.js",
    "/dashboard/..%2Fapi%2Fapp.py",
    "/dashboard/%2E%2E%2Fsettings.py",
    "/dashboard/index.html.bak",
    "/dashboard/",
])
async def test_only_the_dashboards_own_files_are_served(client, path):
    resp = await client.get(path)
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"


async def test_page_and_files_stay_open_with_api_keys_but_the_api_does_not(secured):
    for path in ("/", "/dashboard/app.js", "/dashboard/style.css", "/dashboard/favicon.svg"):
        assert (await secured.get(path)).status == 200, path
    assert (await secured.get("/api/v1/stats")).status == 401
    assert (await secured.get("/api/v1/stats", headers={"Authorization": f"Bearer {KEY}"})).status == 200


async def test_files_revalidate_instead_of_going_stale(client):
    first = await client.get("/dashboard/app.js")
    assert first.headers["Cache-Control"] == "no-cache"
    again = await client.get("/dashboard/app.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
