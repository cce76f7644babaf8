"""Maintenance: old finished tasks (with their events, outbox rows and search text) and old published outbox
rows are deleted in batches; nothing recent, nothing unfinished; the counters stay exact."""

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime

from taskservice import dispatcher, maintenance
from tests.support.execution import new_task, start

FINISH = {
    "COMPLETED": "status = 'COMPLETED', attempts = 1, started_at = now(), result = '1'",
    "FAILED": "status = 'FAILED', attempts = 1, started_at = now(), error = 'boom'",
    "CANCELLED": "status = 'CANCELLED'",
}


async def finished_task(pool, status: str, days_ago: float, priority: str = "MEDIUM") -> uuid.UUID:
    """A task that finished `days_ago` days ago (and was created a day before that)."""
    task_id = await new_task(pool, f"retention-{status}", priority=priority)
    async with pool.acquire() as conn:
        await conn.execute(
            f"UPDATE tasks SET {FINISH[status]}, finished_at = now() - make_interval(secs => $2), "
            "created_at = now() - make_interval(secs => $2 + 86400) WHERE id = $1",
            task_id, days_ago * 86_400)
    return task_id


async def unfinished_task(pool, days_ago: float) -> uuid.UUID:
    task_id = await new_task(pool, "retention-unfinished")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE tasks SET created_at = now() - make_interval(secs => $2) WHERE id = $1",
                           task_id, days_ago * 86_400)
    return task_id


async def remaining(pool, task_ids) -> dict[str, set]:
    async with pool.acquire() as conn:
        found = {}
        for table, column in (("tasks", "id"), ("task_events", "task_id"), ("outbox", "task_id"),
                              ("task_texts", "task_id")):
            rows = await conn.fetch(f"SELECT DISTINCT {column} AS id FROM {table} WHERE {column} = ANY($1)",
                                    list(task_ids))
            found[table] = {row["id"] for row in rows}
    return found


async def assert_counters_exact(pool) -> None:
    async with pool.acquire() as conn:
        counted = await conn.fetch("SELECT status, priority, sum(n)::bigint AS n FROM task_counts "
                                   "GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2")
        actual = await conn.fetch("SELECT status, priority, count(*) AS n FROM tasks GROUP BY 1, 2 ORDER BY 1, 2")
    assert [tuple(r) for r in counted] == [tuple(r) for r in actual]


async def test_old_finished_tasks_go_with_their_events_outbox_rows_and_texts(pool, settings):
    old = [await finished_task(pool, status, 31, priority)
           for status, priority in (("COMPLETED", "HIGH"), ("FAILED", "LOW"), ("CANCELLED", "MEDIUM"))]
    recent = [await finished_task(pool, status, 29) for status in FINISH]
    unfinished = [await unfinished_task(pool, 60)]  # old, but still NEW: never deleted
    await assert_counters_exact(pool)

    done = await maintenance.maintain_once(pool, settings)

    assert done["tasks"] >= 3
    kept = await remaining(pool, old + recent + unfinished)
    for table in ("tasks", "task_events", "outbox", "task_texts"):
        assert kept[table] == set(recent + unfinished), table
    await assert_counters_exact(pool)


async def test_retention_days_zero_keeps_everything(pool, settings):
    ancient = await finished_task(pool, "COMPLETED", 3650)
    done = await maintenance.maintain_once(pool, dataclasses.replace(settings, retention_days=0))
    assert done["tasks"] == 0
    assert (await remaining(pool, [ancient]))["tasks"] == {ancient}
    await maintenance.maintain_once(pool, settings)  # leave nothing old for the other tests


async def test_retention_days_is_configurable(pool, settings):
    week_old = await finished_task(pool, "COMPLETED", 8)
    await maintenance.maintain_once(pool, settings)
    assert (await remaining(pool, [week_old]))["tasks"] == {week_old}
    await maintenance.maintain_once(pool, dataclasses.replace(settings, retention_days=7))
    assert (await remaining(pool, [week_old]))["tasks"] == set()


async def test_deletes_in_batches_until_done(pool, settings, monkeypatch):
    monkeypatch.setattr(maintenance, "BATCH_SIZE", 2)
    old = [await finished_task(pool, "COMPLETED", 40) for _ in range(7)]
    done = await maintenance.maintain_once(pool, settings)
    assert done["tasks"] >= 7
    assert (await remaining(pool, old))["tasks"] == set()
    await assert_counters_exact(pool)


async def published_row(pool, task_id, seconds_ago: float | None) -> int:
    """An outbox row for `task_id`, published `seconds_ago` (None: unpublished, due long ago)."""
    async with pool.acquire() as conn:
        return await conn.fetchval(
            "INSERT INTO outbox (task_id, priority, available_at, published_at) "
            "VALUES ($1, 'MEDIUM', now() - interval '1 day', now() - make_interval(secs => $2)) RETURNING id",
            task_id, seconds_ago)


async def outbox_ids(pool, ids) -> set[int]:
    async with pool.acquire() as conn:
        return {r["id"] for r in await conn.fetch("SELECT id FROM outbox WHERE id = ANY($1)", ids)}


async def test_only_old_published_outbox_rows_go(pool, settings):
    task_id = await new_task(pool, "retention-outbox", run_at=datetime(2099, 1, 1, tzinfo=UTC))
    old = await published_row(pool, task_id, 3601)
    recent = await published_row(pool, task_id, 3500)
    async with pool.acquire() as conn:
        unpublished = await conn.fetchval("SELECT id FROM outbox WHERE task_id = $1 AND published_at IS NULL",
                                          task_id)
    done = await maintenance.maintain_once(pool, settings)
    assert done["outbox_rows"] >= 1
    assert await outbox_ids(pool, [old, recent, unpublished]) == {recent, unpublished}
    assert (await remaining(pool, [task_id]))["tasks"] == {task_id}  # the task itself stays
    await maintenance.maintain_once(pool, dataclasses.replace(settings, outbox_retention_seconds=60))
    assert await outbox_ids(pool, [old, recent, unpublished]) == {unpublished}


async def test_a_locked_task_is_skipped_not_waited_for(pool, settings):
    locked = await finished_task(pool, "FAILED", 40)
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", locked)
        await asyncio.wait_for(maintenance.maintain_once(pool, settings), 5)
        assert (await remaining(pool, [locked]))["tasks"] == {locked}
    await maintenance.maintain_once(pool, settings)
    assert (await remaining(pool, [locked]))["tasks"] == set()


async def test_the_dispatcher_runs_maintenance_on_its_own(pool, settings):
    running = start(dispatcher.main, dataclasses.replace(settings, maintenance_interval_seconds=0.2))
    try:
        old = await finished_task(pool, "COMPLETED", 31)
        for _ in range(50):
            if not (await remaining(pool, [old]))["tasks"]:
                break
            await asyncio.sleep(0.1)
        assert (await remaining(pool, [old]))["tasks"] == set()
    finally:
        await running.shutdown()
