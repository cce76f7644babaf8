"""The spec states the rules a create body is held to, not only the prose."""

import dataclasses

from openapi_spec_validator import validate

from taskservice.api.app import create_app


async def spec_of(aiohttp_client, settings) -> dict:
    client = await aiohttp_client(create_app(settings))
    resp = await client.get("/api/docs/swagger.json")
    assert resp.status == 200
    return await resp.json()


async def test_the_create_schema_states_nul_depth_and_size_rules(aiohttp_client, settings):
    spec = await spec_of(aiohttp_client, dataclasses.replace(settings, max_body_bytes=4096))
    validate(spec)
    create = spec["components"]["schemas"]["TaskCreate"]
    payload = create["properties"]["payload"]
    assert (payload["x-max-json-bytes"], payload["x-max-depth"], payload["x-no-nul"]) == (65536, 254, True)
    for field in ("name", "description"):
        assert create["properties"][field]["pattern"] == "^[^\\u0000]*$"
    assert "twice" in create["description"] and "gzip" in create["description"]
    operation = spec["paths"]["/api/v1/tasks/"]["post"]
    assert operation["requestBody"]["x-max-bytes"] == 4096
    assert {"400", "408", "413", "415"} <= set(operation["responses"])
