"""POST /api/v1/tasks/{id}/retry: FAILED or CANCELLED → PENDING with a fresh budget; else 409."""

import asyncio
import dataclasses
import uuid

import pytest

from taskservice import worker
from taskservice.api.app import create_app
from tests.support.execution import start, statuses_seen, wait_for_status

TASKS = "/api/v1/tasks/"

# Each status as the schema allows it (finished_at iff final, a lease iff IN_PROGRESS).
SET_STATUS = {
    "PENDING": "status = 'PENDING'",
    "IN_PROGRESS": "status = 'IN_PROGRESS', attempts = 1, started_at = now(), worker_id = 'w', "
                   "lease_expires_at = now() + interval '1 minute'",
    "COMPLETED": "status = 'COMPLETED', attempts = 1, started_at = now(), finished_at = now(), "
                 "result = '{\"ok\": true}'",
    "FAILED": "status = 'FAILED', attempts = 3, started_at = now(), finished_at = now(), error = 'boom'",
    "CANCELLED": "status = 'CANCELLED', finished_at = now(), cancel_requested_at = now()",
}


async def create(client, **body) -> dict:
    resp = await client.post(TASKS, json={"name": "retried", **body})
    assert resp.status == 201
    return await resp.json()


async def put_in(pool, task_id: str, status: str) -> None:
    async with pool.acquire() as conn:
        await conn.execute(f"UPDATE tasks SET {SET_STATUS[status]} WHERE id = $1", uuid.UUID(task_id))


async def outbox_rows(pool, task_id: str) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM outbox WHERE task_id = $1", uuid.UUID(task_id))


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED"])
async def test_a_failed_or_cancelled_task_is_pending_again_with_a_fresh_budget(client, pool, status):
    task = await create(client, max_attempts=3)
    await put_in(pool, task["id"], status)
    resp = await client.post(f"/api/v1/tasks/{task['id']}/retry")
    assert resp.status == 200
    retried = await resp.json()
    assert retried["id"] == task["id"] and retried["status"] == "PENDING"
    assert retried["attempts"] == 0 and retried["max_attempts"] == 3
    for field in ("error", "result", "finished_at", "cancel_requested_at"):
        assert retried[field] is None, field
    assert retried["updated_at"] > task["updated_at"]
    assert await outbox_rows(pool, task["id"]) == 2  # the create's and the retry's
    events = (await (await client.get(f"/api/v1/tasks/{task['id']}/events")).json())["items"]
    assert (events[-1]["from_status"], events[-1]["status"], events[-1]["attempt"]) == (status, "PENDING", 0)


@pytest.mark.parametrize("status", ["NEW", "PENDING", "IN_PROGRESS", "COMPLETED"])
async def test_any_other_status_is_409_naming_it(client, pool, status):
    task = await create(client)
    if status != "NEW":
        await put_in(pool, task["id"], status)
    resp = await client.post(f"/api/v1/tasks/{task['id']}/retry")
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    assert status in (await resp.json())["detail"]
    assert await outbox_rows(pool, task["id"]) == 1  # nothing dispatched


async def test_unknown_task_is_404_and_malformed_id_422(client):
    resp = await client.post(f"/api/v1/tasks/{uuid.uuid4()}/retry")
    assert resp.status == 404 and (await resp.json())["detail"] == "Task not found"
    resp = await client.post("/api/v1/tasks/nope/retry")
    assert resp.status == 422 and "task_id" in (await resp.json())["errors"]


async def test_racing_retries_retry_once(client, pool):
    task = await create(client)
    await put_in(pool, task["id"], "FAILED")
    responses = await asyncio.gather(*(client.post(f"/api/v1/tasks/{task['id']}/retry") for _ in range(10)))
    assert sorted(r.status for r in responses) == [200] + [409] * 9
    assert await outbox_rows(pool, task["id"]) == 2


async def test_a_retried_task_runs_again(aiohttp_client, settings, pool):
    settings = dataclasses.replace(settings, dispatcher_embedded=True,
                                   handler_modules=("tests.support.handlers_for_tests",))
    client = await aiohttp_client(create_app(settings))
    running = start(worker.main, settings)
    try:
        task = await create(client, kind="fail_first_run", max_attempts=1)
        failed = (await wait_for_status(pool, [uuid.UUID(task["id"])], "FAILED"))[uuid.UUID(task["id"])]
        assert failed["error"] == "RuntimeError: first run fails"
        resp = await client.post(f"/api/v1/tasks/{task['id']}/retry")
        assert resp.status == 200
        rows = await wait_for_status(pool, [uuid.UUID(task["id"])], "COMPLETED")
        done = rows[uuid.UUID(task["id"])]
        assert done["attempts"] == 1 and done["result"] == {"ran_again": True} and done["error"] is None
        assert await statuses_seen(pool, uuid.UUID(task["id"])) == [
            "NEW", "PENDING", "IN_PROGRESS", "FAILED", "PENDING", "IN_PROGRESS", "COMPLETED"]
    finally:
        await running.shutdown()


async def test_a_retried_cancelled_task_runs(aiohttp_client, settings, pool):
    settings = dataclasses.replace(settings, handler_modules=("tests.support.handlers_for_tests",))
    client = await aiohttp_client(create_app(settings))  # no dispatcher yet: cancelled while NEW
    task = await create(client, kind="echo")
    assert (await client.delete(f"/api/v1/tasks/{task['id']}")).status == 200
    assert (await client.post(f"/api/v1/tasks/{task['id']}/retry")).status == 200
    running = start(worker.main, settings)
    await aiohttp_client(create_app(dataclasses.replace(settings, dispatcher_embedded=True)))
    try:
        rows = await wait_for_status(pool, [uuid.UUID(task["id"])], "COMPLETED")
        assert rows[uuid.UUID(task["id"])]["attempts"] == 1
        assert await statuses_seen(pool, uuid.UUID(task["id"])) == [
            "NEW", "CANCELLED", "PENDING", "IN_PROGRESS", "COMPLETED"]
    finally:
        await running.shutdown()


async def test_a_retried_scheduled_task_still_waits_for_run_at(client, pool):
    task = await create(client, run_at="2099-01-01T00:00:00Z")
    assert (await client.delete(f"/api/v1/tasks/{task['id']}")).status == 200
    assert (await client.post(f"/api/v1/tasks/{task['id']}/retry")).status == 200
    async with pool.acquire() as conn:
        due = await conn.fetchval("SELECT max(available_at) FROM outbox WHERE task_id = $1", uuid.UUID(task["id"]))
    assert due.isoformat() == "2099-01-01T00:00:00+00:00"
