"""API keys: off by default; with API_KEYS every /api/v1 route needs one, in either header."""

import dataclasses
import logging
import uuid

import pytest
from openapi_spec_validator import validate

from taskservice.api.app import create_app

KEYS = ("first-key-0123456789abcdef", "second-key-fedcba9876543210")
WRONG = "wrong-key-0123456789abcdef"
TASKS = "/api/v1/tasks/"
SOME_ID = "6f1c3f9e-1111-4a4a-9a9a-123456789abc"

API_ROUTES = [
    ("GET", TASKS),
    ("GET", "/api/v1/tasks"),
    ("POST", TASKS),
    ("GET", f"/api/v1/tasks/{SOME_ID}"),
    ("DELETE", f"/api/v1/tasks/{SOME_ID}"),
    ("GET", f"/api/v1/tasks/{SOME_ID}/status"),
    ("GET", f"/api/v1/tasks/{SOME_ID}/events"),
    ("POST", f"/api/v1/tasks/{SOME_ID}/retry"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/no-such-route"),  # 401 before 404: nothing is learnt without a key
    ("GET", "/%61pi/v1/tasks/"),  # a percent-encoded spelling of the same route
    ("GET", "/api/v1//tasks/"),
]
OPEN_ROUTES = ["/health", "/ready", "/docs", "/api/docs/swagger.json", "/metrics"]


@pytest.fixture
async def secured(aiohttp_client, settings):
    return await aiohttp_client(create_app(dataclasses.replace(settings, api_keys=KEYS)))


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


async def assert_401(resp, invalid: bool) -> dict:
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="taskservice"')
    assert ('error="invalid_token"' in challenge) is invalid
    problem = await resp.json()
    assert problem["status"] == 401 and problem["title"] == "Unauthorized" and problem["detail"]
    return problem


async def test_without_api_keys_nothing_is_required(client):
    assert (await client.get(TASKS)).status == 200
    assert (await client.post(TASKS, json={"name": "open"})).status == 201


@pytest.mark.parametrize("method, path", API_ROUTES)
async def test_every_api_route_needs_a_key(secured, method, path):
    problem = await assert_401(await secured.request(method, path), invalid=False)
    assert "Authorization: Bearer" in problem["detail"] and "X-API-Key" in problem["detail"]


@pytest.mark.parametrize("headers", [
    bearer(WRONG),
    {"X-API-Key": WRONG},
    bearer(KEYS[0][:-1]),  # a prefix of a real key
    bearer(KEYS[0] + "x"),
    {"X-API-Key": KEYS[0].upper()},
])
async def test_a_wrong_key_is_401(secured, headers):
    await assert_401(await secured.get(TASKS, headers=headers), invalid=True)


@pytest.mark.parametrize("headers", [
    {"Authorization": f"Basic {KEYS[0]}"},  # not a bearer token
    {"Authorization": "Bearer "},
    {"X-API-Key": ""},
])
async def test_no_usable_key_is_401_as_missing(secured, headers):
    await assert_401(await secured.get(TASKS, headers=headers), invalid=False)


@pytest.mark.parametrize("headers", [
    bearer(KEYS[0]),
    bearer(KEYS[1]),
    {"Authorization": f"bearer {KEYS[0]}"},  # the scheme is case-insensitive
    {"X-API-Key": KEYS[0]},
    {"X-API-Key": KEYS[1]},
    {**bearer(WRONG), "X-API-Key": KEYS[1]},  # either header may carry the valid key
])
async def test_either_header_with_any_configured_key_is_accepted(secured, headers):
    resp = await secured.post(TASKS, json={"name": "authorised"}, headers=headers)
    assert resp.status == 201
    task = await resp.json()
    resp = await secured.get(f"/api/v1/tasks/{task['id']}", headers=headers)
    assert resp.status == 200


async def test_key_is_checked_before_the_body(secured):
    resp = await secured.post(TASKS, json={"name": ""})
    await assert_401(resp, invalid=False)
    resp = await secured.post(TASKS, json={"name": ""}, headers=bearer(KEYS[0]))
    assert resp.status == 422


@pytest.mark.parametrize("path", OPEN_ROUTES)
async def test_health_docs_spec_and_metrics_stay_open(secured, path):
    resp = await secured.get(path)
    assert resp.status == 200, path


async def test_swagger_assets_stay_open(secured):
    page = await (await secured.get("/docs")).text()
    asset = page.split('src="', 1)[1].split('"', 1)[0]
    assert (await secured.get(asset)).status == 200


async def test_settings_close_docs_and_metrics(aiohttp_client, settings):
    client = await aiohttp_client(create_app(dataclasses.replace(
        settings, api_keys=KEYS, auth_protect_docs=True, auth_protect_metrics=True)))
    for path in ("/docs", "/api/docs/swagger.json", "/metrics", "/static/swagger/swagger-ui.css"):
        await assert_401(await client.get(path), invalid=False)
        assert (await client.get(path, headers=bearer(KEYS[0]))).status != 401, path
    for path in ("/health", "/ready"):
        assert (await client.get(path)).status == 200


async def test_protect_settings_do_nothing_without_keys(aiohttp_client, settings):
    client = await aiohttp_client(create_app(dataclasses.replace(
        settings, auth_protect_docs=True, auth_protect_metrics=True)))
    for path in ("/docs", "/api/docs/swagger.json", "/metrics", TASKS):
        assert (await client.get(path)).status == 200, path


async def test_keys_are_never_logged_or_echoed(secured, caplog):
    caplog.set_level(logging.DEBUG)
    for headers in (bearer(WRONG), {"X-API-Key": WRONG}, bearer(KEYS[0]), {"X-API-Key": KEYS[1]}):
        resp = await secured.get(f"/api/v1/tasks/{uuid.uuid4()}", headers=headers)
        body = await resp.text()
        assert WRONG not in body and KEYS[0] not in body and KEYS[1] not in body
        assert all(WRONG not in value and KEYS[0] not in value for value in resp.headers.values())
    for key in (WRONG, *KEYS):
        assert key not in caplog.text
    assert "401" in caplog.text  # the access log did see the requests


async def test_spec_documents_the_schemes_and_what_needs_them(secured):
    spec = await (await secured.get("/api/docs/swagger.json")).json()
    validate(spec)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": schemes["bearer"]["description"]}
    assert (schemes["apiKey"]["type"], schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == \
        ("apiKey", "header", "X-API-Key")
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api/v1/"):
                assert operation["security"] == [{"bearer": []}, {"apiKey": []}], (path, method)
                assert "401" in operation["responses"], (path, method)
            else:
                assert "security" not in operation, (path, method)
                assert "401" not in operation["responses"], (path, method)


async def test_spec_without_keys_names_the_schemes_but_requires_none(client):
    spec = await (await client.get("/api/docs/swagger.json")).json()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert "security" not in spec
    for operations in spec["paths"].values():
        for operation in operations.values():
            assert "security" not in operation and "401" not in operation["responses"]
