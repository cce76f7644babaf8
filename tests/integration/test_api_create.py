"""POST /api/v1/tasks: creating tasks, validation and idempotency."""

import asyncio

import pytest

TASKS = "/api/v1/tasks/"


async def test_create_returns_task_with_location_and_outbox_row(client, pool):
    resp = await client.post(TASKS, json={"name": "report", "description": "monthly", "priority": "HIGH"})
    assert resp.status == 201
    task = await resp.json()
    assert resp.headers["Location"] == f"/api/v1/tasks/{task['id']}"
    assert task["name"] == "report"
    assert task["description"] == "monthly"
    assert task["priority"] == "HIGH"
    assert task["status"] == "NEW"
    assert task["kind"] == "noop"
    assert task["payload"] == {}
    assert task["attempts"] == 0 and task["max_attempts"] == 3
    assert task["timeout_seconds"] == 300
    assert task["created_at"].endswith("+00:00")
    for field in ("started_at", "finished_at", "result", "error", "run_at", "cancel_requested_at"):
        assert task[field] is None
    async with pool.acquire() as conn:
        outbox = await conn.fetch("SELECT * FROM outbox WHERE task_id = $1", task["id"])
        events = await conn.fetch("SELECT * FROM task_events WHERE task_id = $1", task["id"])
    assert len(outbox) == 1 and outbox[0]["priority"] == "HIGH" and outbox[0]["published_at"] is None
    assert [e["status"] for e in events] == ["NEW"]


async def test_both_collection_paths_work_without_redirect(client):
    resp = await client.post("/api/v1/tasks", json={"name": "no slash"}, allow_redirects=False)
    assert resp.status == 201
    resp = await client.get("/api/v1/tasks", allow_redirects=False)
    assert resp.status == 200


async def test_create_with_every_optional_field(client):
    body = {"name": "n", "priority": "LOW", "kind": "sleep", "payload": {"seconds": 1, "nested": [1, "a"]},
            "max_attempts": 5, "timeout_seconds": 60, "run_at": "2030-01-01T00:00:00+02:00"}
    resp = await client.post(TASKS, json=body)
    assert resp.status == 201, await resp.text()
    task = await resp.json()
    assert task["kind"] == "sleep"
    assert task["payload"] == {"seconds": 1, "nested": [1, "a"]}
    assert task["max_attempts"] == 5 and task["timeout_seconds"] == 60
    assert task["run_at"] == "2029-12-31T22:00:00+00:00"


async def test_scheduled_task_outbox_row_waits_until_run_at(client, pool):
    resp = await client.post(TASKS, json={"name": "later", "run_at": "2031-06-01T12:00:00Z"})
    task = await resp.json()
    async with pool.acquire() as conn:
        available_at = await conn.fetchval("SELECT available_at FROM outbox WHERE task_id = $1", task["id"])
    assert available_at.isoformat() == "2031-06-01T12:00:00+00:00"


@pytest.mark.parametrize("body, field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"name": 5}, "name"),
    ({"name": None}, "name"),
    ({"name": "a\u0000b"}, "name"),
    ({"name": "ok", "description": "d" * 10_001}, "description"),
    ({"name": "ok", "priority": "URGENT"}, "priority"),
    ({"name": "ok", "priority": "medium"}, "priority"),
    ({"name": "ok", "max_attempts": 0}, "max_attempts"),
    ({"name": "ok", "max_attempts": 21}, "max_attempts"),
    ({"name": "ok", "max_attempts": "3"}, "max_attempts"),
    ({"name": "ok", "max_attempts": 2.5}, "max_attempts"),
    ({"name": "ok", "timeout_seconds": 0}, "timeout_seconds"),
    ({"name": "ok", "timeout_seconds": 86_401}, "timeout_seconds"),
    ({"name": "ok", "payload": [1, 2]}, "payload"),
    ({"name": "ok", "payload": "text"}, "payload"),
    ({"name": "ok", "payload": {"big": "x" * 70_000}}, "payload"),
    ({"name": "ok", "payload": {"k": "nul\u0000"}}, "payload"),
    ({"name": "ok", "kind": "has space"}, "kind"),
    ({"name": "ok", "run_at": "tomorrow"}, "run_at"),
    ({"name": "ok", "run_at": "2030-01-01T00:00:00"}, "run_at"),
    ({"name": "ok", "run_at": "0001-01-01T00:00:00Z"}, "run_at"),  # asyncpg's -infinity
    ({"name": "ok", "run_at": "9999-12-31T23:59:59.999999Z"}, "run_at"),  # and infinity
])
async def test_invalid_bodies_get_422_naming_the_field(client, body, field):
    resp = await client.post(TASKS, json=body)
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["status"] == 422 and problem["title"] == "Unprocessable Content"
    assert field in problem["errors"]
    assert field in problem["detail"]


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"name"', b"null", b"42"])
async def test_json_that_is_not_an_object_is_422(client, raw):
    resp = await client.post(TASKS, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 422
    assert (await resp.json())["status"] == 422


async def test_malformed_json_is_400(client):
    resp = await client.post(TASKS, data=b'{"name": ', headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    assert "not valid JSON" in (await resp.json())["detail"]


async def test_deeply_nested_json_is_rejected_not_crashed(client):
    raw = b'{"name": "x", "payload": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    resp = await client.post(TASKS, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status in (400, 422)


async def test_wrong_content_type_is_415(client):
    resp = await client.post(TASKS, data=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415
    assert "application/json" in (await resp.json())["detail"]


async def test_empty_body_is_422_missing_name(client):
    resp = await client.post(TASKS)
    assert resp.status == 422
    assert "name" in (await resp.json())["errors"]


async def test_oversized_body_is_413(client):
    resp = await client.post(TASKS, data=b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}',
                             headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"


async def test_fifty_concurrent_creates_give_fifty_tasks_and_outbox_rows(client, pool):
    marker = "concurrent-create-batch"
    responses = await asyncio.gather(*(client.post(TASKS, json={"name": f"{marker}-{i}"}) for i in range(50)))
    assert [r.status for r in responses] == [201] * 50
    ids = {(await r.json())["id"] for r in responses}
    assert len(ids) == 50
    async with pool.acquire() as conn:
        tasks = await conn.fetchval("SELECT count(*) FROM tasks WHERE name LIKE $1", f"{marker}-%")
        outbox = await conn.fetchval(
            "SELECT count(*) FROM outbox o JOIN tasks t ON t.id = o.task_id WHERE t.name LIKE $1", f"{marker}-%")
    assert tasks == 50 and outbox == 50


async def test_idempotency_key_replays_the_first_task(client, pool):
    body = {"name": "charge", "payload": {"amount": 10}}
    headers = {"Idempotency-Key": "key-replay-1"}
    first = await client.post(TASKS, json=body, headers=headers)
    second = await client.post(TASKS, json=body, headers=headers)
    assert first.status == 201 and second.status == 200
    assert (await first.json())["id"] == (await second.json())["id"]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tasks WHERE idempotency_key = 'key-replay-1'") == 1


async def test_idempotency_key_with_a_different_body_is_409(client):
    headers = {"Idempotency-Key": "key-conflict-1"}
    assert (await client.post(TASKS, json={"name": "a"}, headers=headers)).status == 201
    resp = await client.post(TASKS, json={"name": "b"}, headers=headers)
    assert resp.status == 409
    assert "Idempotency-Key" in (await resp.json())["detail"]


async def test_racing_idempotent_creates_make_one_task(client, pool):
    headers = {"Idempotency-Key": "key-race-1"}
    responses = await asyncio.gather(*(client.post(TASKS, json={"name": "race"}, headers=headers)
                                       for _ in range(20)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 19 + [201]
    assert len({(await r.json())["id"] for r in responses}) == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox o JOIN tasks t ON t.id = o.task_id "
                                   "WHERE t.idempotency_key = 'key-race-1'") == 1


async def test_empty_idempotency_key_is_422(client):
    resp = await client.post(TASKS, json={"name": "a"}, headers={"Idempotency-Key": ""})
    assert resp.status == 422


async def test_unknown_fields_are_ignored_as_the_old_service_did(client):
    resp = await client.post(TASKS, json={"name": "ok", "unexpected": 1, "owner": {"id": 7}})
    assert resp.status == 201
    assert "unexpected" not in await resp.json()


async def test_payload_nested_too_deep_is_422(client):
    payload: dict = {}
    inner = payload
    for _ in range(300):
        inner["a"] = {}
        inner = inner["a"]
    resp = await client.post(TASKS, json={"name": "deep", "payload": payload})
    assert resp.status == 422
    assert "payload" in (await resp.json())["errors"]
