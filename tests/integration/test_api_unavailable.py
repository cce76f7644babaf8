"""With the database unreachable, the API answers 503 (not 500) and stays alive."""

import dataclasses
import socket

import pytest

from taskservice.api.app import create_app


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens here once the socket closes


@pytest.fixture
async def offline_client(aiohttp_client, settings):
    unreachable = f"postgresql://postgres@127.0.0.1:{closed_port()}/taskservice"
    return await aiohttp_client(create_app(dataclasses.replace(settings, database_url=unreachable, db_pool_min=0)))


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/v1/tasks/"),
    ("GET", "/api/v1/tasks/6f1c3f9e-1111-4a4a-9a9a-123456789abc"),
    ("DELETE", "/api/v1/tasks/6f1c3f9e-1111-4a4a-9a9a-123456789abc"),
    ("GET", "/ready"),
])
async def test_database_down_gives_503(offline_client, method, path):
    resp = await offline_client.request(method, path)
    assert resp.status == 503
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == 503 and "database" in body["detail"]
    assert resp.headers["Retry-After"] == "1"


async def test_create_with_database_down_gives_503(offline_client):
    resp = await offline_client.post("/api/v1/tasks/", json={"name": "x"})
    assert resp.status == 503


async def test_health_stays_up_without_the_database(offline_client):
    resp = await offline_client.get("/health")
    assert resp.status == 200
