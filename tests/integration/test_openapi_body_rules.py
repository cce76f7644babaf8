"""The spec states the rules a create body is held to, not only the prose."""

import dataclasses

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from openapi_spec_validator import validate

from taskservice.api.app import create_app
from taskservice.api.schemas import TaskCreateSchema


def test_the_create_schema_states_nul_depth_and_size_rules():
    # Built on its own: aiohttp-apispec registers a body schema's component with the first app
    # of a process only, and the tests make many.
    spec = APISpec("t", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema("TaskCreate", schema=TaskCreateSchema)
    create = spec.to_dict()["components"]["schemas"]["TaskCreate"]
    payload = create["properties"]["payload"]
    assert (payload["x-max-json-bytes"], payload["x-max-depth"], payload["x-no-nul"]) == (65536, 254, True)
    for field in ("name", "description"):
        assert create["properties"][field]["pattern"] == "^[^\\u0000]*$"
    assert "twice" in create["description"] and "gzip" in create["description"]


async def test_each_operation_with_a_body_states_its_size_limit_and_deadline(aiohttp_client, settings):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, max_body_bytes=4096)))
    spec = await (await client.get("/api/docs/swagger.json")).json()
    validate(spec)
    operation = spec["paths"]["/api/v1/tasks/"]["post"]
    assert operation["requestBody"]["x-max-bytes"] == 4096
    assert {"400", "408", "413", "415"} <= set(operation["responses"])
