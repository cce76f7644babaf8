"""Every 422 has the documented shape: problem+json whose `errors` maps a field to a list of messages
(a value inside a list or nested object named by its dotted path), and whose `detail` names each field."""

import uuid

import pytest

TASKS = "/api/v1/tasks/"
SOME_ID = str(uuid.uuid4())


async def problem_of(resp) -> dict:
    assert resp.status == 422, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    errors = problem["errors"]
    assert isinstance(errors, dict) and errors
    for field, messages in errors.items():
        assert isinstance(field, str)
        assert isinstance(messages, list) and messages
        assert all(isinstance(message, str) and message for message in messages), (field, messages)
        assert f"{field}: " in problem["detail"]
    return problem


@pytest.mark.parametrize(("query", "field"), [
    ("status=DONE", "status.0"),
    ("status=NEW&status=DONE&status=LATE", "status.1"),
    ("priority=urgent", "priority.0"),
    ("page=0", "page"),
    ("page=abc", "page"),
    ("page_size=101", "page_size"),
    ("search=" + "x" * 201, "search"),
    ("search=a%00b", "search"),
])
async def test_list_filters(client, query, field):
    problem = await problem_of(await client.get(f"{TASKS}?{query}"))
    assert field in problem["errors"]


async def test_each_bad_list_value_is_named_by_its_position(client):
    problem = await problem_of(await client.get(f"{TASKS}?status=NEW&status=DONE&status=LATE"))
    assert set(problem["errors"]) == {"status.1", "status.2"}
    assert problem["errors"]["status.1"] == ["Must be one of: NEW, PENDING, IN_PROGRESS, COMPLETED, FAILED, "
                                             "CANCELLED."]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "a\x00b"}, "name"),
    ({"name": 5}, "name"),
    ({"name": "t", "description": "x" * 10_001}, "description"),
    ({"name": "t", "priority": "URGENT"}, "priority"),
    ({"name": "t", "kind": "no spaces allowed"}, "kind"),
    ({"name": "t", "payload": [1, 2]}, "payload"),
    ({"name": "t", "payload": "text"}, "payload"),
    ({"name": "t", "payload": {"k": "a\x00b"}}, "payload"),
    ({"name": "t", "payload": {"blob": "x" * 70_000}}, "payload"),
    ({"name": "t", "max_attempts": 0}, "max_attempts"),
    ({"name": "t", "max_attempts": "3"}, "max_attempts"),
    ({"name": "t", "timeout_seconds": 86_401}, "timeout_seconds"),
    ({"name": "t", "run_at": "2030-01-01T00:00:00"}, "run_at"),
    ({"name": "t", "run_at": "soon"}, "run_at"),
    ([{"name": "t"}], "_schema"),
    ("just a string", "_schema"),
])
async def test_create_bodies(client, body, field):
    problem = await problem_of(await client.post(TASKS, json=body))
    assert field in problem["errors"]


async def test_several_bad_fields_are_all_reported(client):
    problem = await problem_of(await client.post(TASKS, json={"priority": "URGENT", "max_attempts": 99}))
    assert set(problem["errors"]) == {"name", "priority", "max_attempts"}


async def test_idempotency_key_header(client):
    problem = await problem_of(await client.post(TASKS, json={"name": "t"}, headers={"Idempotency-Key": "two words"}))
    assert "Idempotency-Key" in problem["errors"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/tasks/not-a-uuid"),
    ("GET", "/api/v1/tasks/not-a-uuid/status"),
    ("GET", "/api/v1/tasks/not-a-uuid/events"),
    ("DELETE", "/api/v1/tasks/not-a-uuid"),
    ("POST", "/api/v1/tasks/not-a-uuid/retry"),
])
async def test_malformed_task_ids(client, method, path):
    problem = await problem_of(await client.request(method, path))
    assert problem["errors"] == {"task_id": ["Not a valid UUID."]}


@pytest.mark.parametrize(("path", "params", "headers", "field"), [
    (f"/api/v1/tasks/{SOME_ID}/status", {"wait": "-1", "since": "NEW"}, {}, "wait"),
    (f"/api/v1/tasks/{SOME_ID}/status", {"since": "LATE"}, {}, "since"),
    ("/api/v1/tasks/stream", {"status": "LATE"}, {}, "status"),
    ("/api/v1/tasks/stream", {"task_id": "nope"}, {}, "task_id"),
    ("/api/v1/tasks/stream", {"last_event_id": "-1"}, {}, "last_event_id"),
    ("/api/v1/tasks/stream", {}, {"Last-Event-ID": "x"}, "Last-Event-ID"),
    ("/api/v1/stats/throughput", {"minutes": "0"}, {}, "minutes"),
])
async def test_other_query_and_header_parameters(client, path, params, headers, field):
    problem = await problem_of(await client.get(path, params=params, headers=headers))
    assert field in problem["errors"]
