"""DELETE /api/v1/tasks/{id}: cancelling in every status, and racing cancels."""

import asyncio
import uuid

TASKS = "/api/v1/tasks/"


async def create(client) -> dict:
    resp = await client.post(TASKS, json={"name": "to cancel"})
    return await resp.json()


async def set_status(pool, task_id: str, status: str) -> None:
    """Move a task the way a worker would, to test cancel against every status."""
    finished = status in ("COMPLETED", "FAILED", "CANCELLED")
    async with pool.acquire() as conn:
        await conn.execute(
            """UPDATE tasks SET status = $2,
                   started_at = CASE WHEN $2 <> 'PENDING' THEN now() END,
                   lease_expires_at = CASE WHEN $2 = 'IN_PROGRESS' THEN now() + interval '1 minute' END,
                   finished_at = CASE WHEN $3 THEN now() END
               WHERE id = $1""",
            uuid.UUID(task_id), status, finished)


async def test_cancel_new_task(client, pool):
    task = await create(client)
    resp = await client.delete(f"/api/v1/tasks/{task['id']}")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "CANCELLED"
    assert body["finished_at"] is not None and body["cancel_requested_at"] is not None


async def test_cancel_pending_task(client, pool):
    task = await create(client)
    await set_status(pool, task["id"], "PENDING")
    resp = await client.delete(f"/api/v1/tasks/{task['id']}")
    assert resp.status == 200
    assert (await resp.json())["status"] == "CANCELLED"


async def test_cancel_running_task_requests_cancellation(client, pool):
    task = await create(client)
    await set_status(pool, task["id"], "IN_PROGRESS")
    resp = await client.delete(f"/api/v1/tasks/{task['id']}")
    assert resp.status == 202
    body = await resp.json()
    assert body["status"] == "IN_PROGRESS"
    assert body["cancel_requested_at"] is not None
    again = await client.delete(f"/api/v1/tasks/{task['id']}")
    assert again.status == 202
    assert (await again.json())["cancel_requested_at"] == body["cancel_requested_at"]


async def test_cancel_finished_task_is_409(client, pool):
    for status in ("COMPLETED", "FAILED"):
        task = await create(client)
        await set_status(pool, task["id"], status)
        resp = await client.delete(f"/api/v1/tasks/{task['id']}")
        assert resp.status == 409
        assert status in (await resp.json())["detail"]


async def test_cancel_cancelled_task_is_200(client):
    task = await create(client)
    await client.delete(f"/api/v1/tasks/{task['id']}")
    resp = await client.delete(f"/api/v1/tasks/{task['id']}")
    assert resp.status == 200
    assert (await resp.json())["status"] == "CANCELLED"


async def test_cancel_unknown_task_is_404(client):
    resp = await client.delete(f"/api/v1/tasks/{uuid.uuid4()}")
    assert resp.status == 404
    assert (await resp.json())["detail"] == "Task not found"


async def test_twenty_concurrent_cancels_make_one_transition(client, pool):
    task = await create(client)
    responses = await asyncio.gather(*(client.delete(f"/api/v1/tasks/{task['id']}") for _ in range(20)))
    assert [r.status for r in responses] == [200] * 20
    async with pool.acquire() as conn:
        events = await conn.fetch("SELECT status FROM task_events WHERE task_id = $1 ORDER BY id",
                                  uuid.UUID(task["id"]))
    assert [e["status"] for e in events] == ["NEW", "CANCELLED"]
