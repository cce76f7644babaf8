"""HEAD answers wherever GET does (uptime checkers use it): same status and headers, no body,
and no operation of its own in the OpenAPI document."""

import asyncio
import dataclasses

import pytest
from aiohttp import web

from taskservice.api.app import create_app

# An example value for each path placeholder (but task_id: a task the test makes), so every GET
# route can be requested.
EXAMPLES = {"name": "app.js"}
STATIC_FILE = "index.html"  # under a static prefix (the Swagger UI's files)
EVENT_STREAM = "text/event-stream"


def get_paths(app: web.Application, **ids: str) -> list[str]:
    """A concrete path for every resource with a GET route: a new GET route is covered with no edit here."""
    values = {**EXAMPLES, **ids}
    paths = []
    for resource in app.router.resources():
        if "GET" not in {route.method for route in resource}:
            continue
        info = resource.get_info()
        if "prefix" in info:  # a static directory
            paths.append(f"{info['prefix']}/{STATIC_FILE}")
        elif "formatter" in info:
            missing = set(info["pattern"].groupindex) - set(values)
            assert not missing, f"add an example value for {missing} to EXAMPLES"
            paths.append(info["formatter"].format(**values))
        else:
            paths.append(info["path"])
    return paths


async def test_every_get_route_answers_head_with_the_same_status_and_headers(client):
    task = await (await client.post("/api/v1/tasks/", json={"name": "head"})).json()
    schedule = await (await client.post("/api/v1/schedules", json={"name": "head", "cron": "@yearly",
                                                                    "task": {"name": "head"}})).json()
    try:
        await every_get_answers_head_alike(client, get_paths(client.app, task_id=task["id"],
                                                             schedule_id=schedule["id"]), task)
    finally:
        await client.delete(f"/api/v1/schedules/{schedule['id']}")  # it must not fire into later tests


async def every_get_answers_head_alike(client, paths: list[str], task: dict) -> None:
    assert {"/health", "/ready", "/metrics", "/docs", "/api/docs/swagger.json", "/", "/api/v1/tasks/",
            f"/api/v1/tasks/{task['id']}", "/api/v1/tasks/stream"} <= set(paths)
    for path in paths:
        async with asyncio.timeout(10):  # an endless body (an event stream) must not hold HEAD open
            head = await client.head(path)
            assert await head.read() == b"", path
        if head.headers.get("Content-Type", "").startswith(EVENT_STREAM):
            assert head.status == 200  # its GET never ends; HEAD gives the stream's headers at once
            continue
        get = await client.get(path)
        await get.read()
        assert (head.status, head.headers.get("Content-Type")) == (get.status, get.headers.get("Content-Type")), path
        assert head.status == 200, path


async def test_head_keeps_validation_and_not_found(client):
    for path, status in [("/api/v1/tasks/not-a-uuid", 422), ("/api/v1/tasks/?status=DONE", 422),
                         ("/api/v1/tasks/stream?status=LATE", 422),
                         ("/api/v1/tasks/00000000-0000-0000-0000-000000000000", 404),
                         ("/dashboard/no-such-file.js", 404)]:
        resp = await client.head(path)
        assert resp.status == status, path
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert await resp.read() == b""


@pytest.mark.parametrize("path", ["/api/v1/tasks/", "/api/v1/tasks/stream"])
async def test_head_needs_the_api_key_where_get_does(aiohttp_client, settings, path):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, api_keys=("k3y",))))
    assert (await client.head(path)).status == 401
    assert (await client.head(path, headers={"Authorization": "Bearer k3y"})).status == 200


async def test_head_is_not_an_operation_in_the_spec(client):
    spec = await (await client.get("/api/docs/swagger.json")).json()
    assert not [path for path, item in spec["paths"].items() if "head" in item]
    assert "get" in spec["paths"]["/health"]
