"""The OpenAPI document is valid OpenAPI 3 and complete; the Swagger UI serves."""

import re

from openapi_spec_validator import validate

PROBLEM = {"$ref": "#/components/schemas/Problem"}
# Prometheus' text format; Server-Sent Events.
NOT_JSON = {"/metrics": "text/plain", "/api/v1/tasks/stream": "text/event-stream"}


async def fetch_spec(client) -> dict:
    resp = await client.get("/api/docs/swagger.json")
    assert resp.status == 200
    return await resp.json()


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


async def test_spec_is_valid_openapi_3(client):
    spec = await fetch_spec(client)
    assert spec["openapi"].startswith("3.")
    validate(spec)


async def test_both_collection_paths_are_documented(client):
    paths = (await fetch_spec(client))["paths"]
    for path in ("/api/v1/tasks", "/api/v1/tasks/"):
        assert set(paths[path]) == {"get", "post"}
    assert paths["/api/v1/tasks"] == paths["/api/v1/tasks/"]


async def test_every_route_is_documented(client):
    paths = (await fetch_spec(client))["paths"]
    for route in client.app.router.routes():
        # The docs themselves, and the dashboard's page and files: not API operations.
        if route.name and route.name.startswith(("swagger.", "dashboard.")):
            continue
        if route.method == "HEAD":  # GET's twin (test_head.py), not an operation of its own
            continue
        assert route.method.lower() in paths.get(route.resource.canonical, {}), route


async def test_every_operation_declares_its_responses(client):
    spec = await fetch_spec(client)
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        successes = [code for code in responses if code.startswith("2")]
        assert successes, (path, method)
        for code, response in responses.items():
            assert response["description"], (path, method, code)
            if code.startswith("2"):
                expected = NOT_JSON.get(path, "application/json")
                assert set(response["content"]) == {expected}, (path, method, code)
            else:
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, \
                    (path, method, code)
        if path not in ("/health", "/metrics", "/api/v1/kinds"):  # the three that never touch the database
            assert "503" in responses, (path, method)
        if "{task_id}" in path:
            assert {"404", "422"} <= set(responses), (path, method)


async def test_error_responses_are_documented_per_operation(client):
    paths = (await fetch_spec(client))["paths"]
    create = paths["/api/v1/tasks/"]["post"]["responses"]
    assert {"200", "201", "400", "409", "413", "415", "422"} <= set(create)
    assert "Location" in create["201"]["headers"]
    assert "422" in paths["/api/v1/tasks/"]["get"]["responses"]
    assert {"200", "202", "409"} <= set(paths["/api/v1/tasks/{task_id}"]["delete"]["responses"])


async def test_request_body_and_parameters_are_openapi_3(client):
    paths = (await fetch_spec(client))["paths"]
    create = paths["/api/v1/tasks/"]["post"]
    assert create["requestBody"]["required"] is True
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskCreate"}
    for path, item in paths.items():
        for method, operation in item.items():
            assert "produces" not in operation, (path, method)
            for parameter in operation.get("parameters", []):
                # A query string or header cannot carry null.
                assert parameter["in"] in ("path", "query", "header"), (path, method)
                assert not parameter["schema"].get("nullable"), (path, method, parameter["name"])
            if "{task_id}" in path:
                [task_id] = [p for p in operation["parameters"] if p["in"] == "path"]
                assert task_id == {"in": "path", "name": "task_id", "required": True,
                                   "schema": {"type": "string", "format": "uuid"}}


async def test_nullable_task_fields_are_marked(client):
    task = (await fetch_spec(client))["components"]["schemas"]["Task"]
    for field in ("description", "started_at", "finished_at", "result", "error", "run_at",
                  "cancel_requested_at"):
        assert task["properties"][field]["nullable"] is True, field
    for field in ("id", "name", "status", "created_at", "payload"):
        assert not task["properties"][field].get("nullable"), field
    assert set(task["required"]) == set(task["properties"])


async def test_swagger_ui_and_its_assets_are_served(client):
    resp = await client.get("/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "/api/docs/swagger.json" in page
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
    assert assets, page
    for asset in assets:
        resp = await client.get(asset)
        assert resp.status == 200, asset
        assert len(await resp.read()) > 1000, asset
