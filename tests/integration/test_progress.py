"""Progress reports (ctx.progress) end to end: stored and shown in the task JSON, throttled,
from async, thread and process handlers, guarded by the attempt, streamed in order."""

import asyncio
import json
import uuid

import pytest

from taskservice import dispatcher, tasks, worker
from tests.support.execution import new_task, statuses_seen, wait_for_status
from tests.support.sse import EventReader

TASKS = "/api/v1/tasks/"


async def claim(pool, task_id: uuid.UUID, worker_id: str = "w-test"):
    """Start an attempt as a worker would (the task's newest outbox row names the message)."""
    async with pool.acquire() as conn:
        outbox_id = await conn.fetchval("SELECT max(id) FROM outbox WHERE task_id = $1", task_id)
        await conn.execute("UPDATE tasks SET status = 'PENDING' WHERE id = $1 AND status = 'NEW'", task_id)
        [row] = await tasks.claim(conn, [(task_id, outbox_id)], worker_id, 60)
    return row


@pytest.fixture
async def progress_notifications(pool):
    """The task_progress NOTIFY payloads, by task id, while a (test-made) stream_listeners row says
    some stream is open, as an API process with an open stream would."""
    heard: dict[str, list[dict]] = {}
    listener = uuid.uuid4()
    conn = await pool.acquire()
    await conn.execute("INSERT INTO stream_listeners (listener, expires_at) VALUES ($1, now() + interval '5 min')",
                       listener)

    def on_notify(_conn, _pid, _channel, payload):
        report = json.loads(payload)
        heard.setdefault(report["task_id"], []).append(report)

    await conn.add_listener("task_progress", on_notify)
    yield heard
    await conn.remove_listener("task_progress", on_notify)
    await conn.execute("DELETE FROM stream_listeners WHERE listener = $1", listener)
    await pool.release(conn)


async def test_progress_is_stored_and_shown_in_the_task_json(client, pool, running):
    running(dispatcher.main)
    running(worker.main)
    created = await (await client.post(TASKS, json={"name": "p", "kind": "progress_steps",
                                                    "payload": {"steps": 3, "pause": 0.3}})).json()
    assert created["progress"] is None
    task_id = uuid.UUID(created["id"])
    await wait_for_status(pool, [task_id], "COMPLETED")
    task = await (await client.get(f"{TASKS}{task_id}")).json()
    assert {k: v for k, v in task["progress"].items() if k != "updated_at"} == \
        {"fraction": 1.0, "message": "step 3 of 3"}
    assert task["progress"]["updated_at"].endswith("+00:00")
    assert task["started_at"] <= task["progress"]["updated_at"] <= task["finished_at"]
    page = await (await client.get(TASKS, params={"search": "p", "status": "COMPLETED"})).json()
    listed = {item["id"]: item for item in page["items"]}
    assert listed[str(task_id)]["progress"] == task["progress"]


async def test_a_burst_of_reports_is_throttled_to_a_few_writes_and_the_last_one_is_stored(
        pool, running, progress_notifications):
    running(dispatcher.main)
    running(worker.main)
    task_id = await new_task(pool, kind="progress_steps", payload={"steps": 100, "pause": 0.01})
    row = (await wait_for_status(pool, [task_id], "COMPLETED"))[task_id]
    assert (row["progress_fraction"], row["progress_message"]) == (1.0, "step 100 of 100")
    writes = progress_notifications.get(str(task_id), [])
    # 100 reports over a second or more: one write per PROGRESS_INTERVAL_SECONDS (0.25 s) at most.
    assert 1 <= len(writes) <= 15, [w["message"] for w in writes]
    assert (writes[-1]["fraction"], writes[-1]["message"]) == (1.0, "step 100 of 100")
    fractions = [w["fraction"] for w in writes]
    assert fractions == sorted(set(fractions))  # in order, none twice
    assert await statuses_seen(pool, task_id) == ["NEW", "PENDING", "IN_PROGRESS", "COMPLETED"]


async def test_a_plain_def_handler_reports_progress_from_its_thread(pool, running):
    running(dispatcher.main)
    running(worker.main)
    task_id = await new_task(pool, kind="sync_progress", payload={"pause": 0.1})
    row = (await wait_for_status(pool, [task_id], "COMPLETED"))[task_id]
    assert (row["progress_fraction"], row["progress_message"]) == (1.0, "done")
    assert row["result"]["thread"] == f"handler {task_id}/1"


async def test_a_process_handler_reports_progress_through_its_pipe(pool, running):
    running(dispatcher.main)
    running(worker.main)
    task_id = await new_task(pool, kind="process_progress", payload={"pause": 0.3})
    row = (await wait_for_status(pool, [task_id], "COMPLETED", timeout=30))[task_id]
    assert (row["progress_fraction"], row["progress_message"]) == (1.0, f"done in {row['result']['pid']}")


@pytest.mark.parametrize("fraction", [1.5, -0.1])
async def test_a_fraction_outside_0_to_1_raises_value_error_in_the_handler(pool, running, fraction):
    running(dispatcher.main)
    running(worker.main)
    task_id = await new_task(pool, kind="progress_fraction", payload={"fraction": fraction}, max_attempts=1)
    row = (await wait_for_status(pool, [task_id], "FAILED"))[task_id]
    assert row["error"] == f"ValueError: progress fraction must be from 0 to 1, got {fraction}"
    assert row["progress_fraction"] is None


async def test_a_progress_write_is_guarded_by_its_attempt(pool):
    task_id = await new_task(pool)
    first = await claim(pool, task_id, "w-1")
    async with pool.acquire() as conn:
        assert await tasks.record_progress(conn, task_id, 1, "w-1", 0.5, "half")
        assert not await tasks.record_progress(conn, task_id, 2, "w-1", 0.6, "wrong attempt")
        assert not await tasks.record_progress(conn, task_id, 1, "w-2", 0.6, "wrong worker")
        await tasks.complete(conn, [(task_id, first["attempts"], {"ok": True})], "w-1")
        assert not await tasks.record_progress(conn, task_id, 1, "w-1", 0.9, "after the outcome")
        row = await tasks.get(conn, task_id)
    assert (row["status"], row["progress_fraction"], row["progress_message"]) == ("COMPLETED", 0.5, "half")


async def test_progress_is_cleared_when_the_next_attempt_starts(pool):
    task_id = await new_task(pool)
    await claim(pool, task_id, "w-1")
    async with pool.acquire() as conn:
        assert await tasks.record_progress(conn, task_id, 1, "w-1", 0.7, "then it failed")
        failed = await tasks.fail_attempt(conn, task_id, 1, "w-1", "boom", 0, retryable=True)
        assert failed["status"] == "PENDING"
        kept = await tasks.get(conn, task_id)
        assert (kept["progress_fraction"], kept["progress_message"]) == (0.7, "then it failed")
        await conn.execute("INSERT INTO outbox (task_id, priority) VALUES ($1, 'MEDIUM')", task_id)
    second = await claim(pool, task_id, "w-2")
    assert second["attempts"] == 2
    assert tasks.public(second)["progress"] is None
    assert second["progress_updated_at"] is None and second["progress_message"] is None


async def test_a_progress_write_records_no_event_and_is_a_hot_update(pool):
    task_id = await new_task(pool)
    await claim(pool, task_id, "w-1")
    before = await statuses_seen(pool, task_id)
    async with pool.acquire() as conn:
        # Room on a page of its own, so whether the update is HOT depends only on the columns it sets.
        await conn.execute("VACUUM tasks")
        stats = ("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'tasks'")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        upd_before, hot_before = await conn.fetchrow(stats)
        for step in range(20):
            assert await tasks.record_progress(conn, task_id, 1, "w-1", step / 20, f"{step}")
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await asyncio.sleep(0)
        upd_after, hot_after = await conn.fetchrow(stats)
    assert await statuses_seen(pool, task_id) == before == ["NEW", "PENDING", "IN_PROGRESS"]
    assert upd_after - upd_before >= 20
    assert hot_after - hot_before >= 10, (upd_after - upd_before, hot_after - hot_before)


async def test_stream_progress_events_arrive_in_order_between_the_attempts_status_events(client, pool, running):
    running(dispatcher.main)
    running(worker.main)
    before = await pool.fetchval("SELECT coalesce(max(id), 0) FROM task_events")
    created = await (await client.post(TASKS, json={"name": "streamed progress", "kind": "progress_steps",
                                                    "payload": {"steps": 5, "pause": 0.3}})).json()
    # Replayed from before the create: on a busy machine the task can start before the stream is open.
    resp = await client.get("/api/v1/tasks/stream", params={"task_id": created["id"], "last_event_id": before})
    assert resp.status == 200
    reader = EventReader(resp)
    replayed, _ = await reader.until_ready()  # a task that started first: its status events so far
    seen = [(message.event, message.json(), message.id) for message in replayed]
    while True:
        message = await reader.next_event(timeout=15)
        seen.append((message.event, message.json(), message.id))
        if message.event == "status" and message.json()["status"] == "COMPLETED":
            break
    resp.close()
    kinds = [(event, data.get("status")) for event, data, _ in seen]
    assert ("status", "IN_PROGRESS") in kinds, seen
    started = kinds.index(("status", "IN_PROGRESS"))
    reports = [data for event, data, _ in seen if event == "progress"]
    assert reports, kinds
    assert all(event == "progress" for event, _ in kinds[started + 1:-1]), kinds
    assert [r["progress"]["fraction"] for r in reports] == sorted({r["progress"]["fraction"] for r in reports})
    assert reports[-1]["progress"]["fraction"] == 1.0 and reports[-1]["progress"]["message"] == "step 5 of 5"
    assert all(r["task_id"] == created["id"] and r["attempt"] == 1 and r["status"] == "IN_PROGRESS"
               for r in reports)
    assert all(message_id is None for event, _, message_id in seen if event == "progress")
