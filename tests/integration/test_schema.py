"""Invariants the schema keeps by itself: history and counters follow every change."""

import uuid

from tests.support.execution import new_task, statuses_seen
from tests.support.invariants import RECOUNT


async def test_counters_and_history_follow_every_change(pool):
    task_id = await new_task(pool, priority="LOW")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE tasks SET status = 'PENDING' WHERE id = $1", task_id)
        await conn.execute("UPDATE tasks SET priority = 'HIGH' WHERE id = $1", task_id)  # counted, no event
        await conn.execute("UPDATE tasks SET status = 'CANCELLED', finished_at = now() WHERE id = $1", task_id)
        await conn.execute("UPDATE tasks SET updated_at = now() WHERE id = $1", task_id)  # no change: nothing
        mismatches = await conn.fetch(RECOUNT)
    assert [dict(m) for m in mismatches] == []
    assert await statuses_seen(pool, task_id) == ["NEW", "PENDING", "CANCELLED"]
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM tasks WHERE id = $1", task_id)
        assert [dict(m) for m in await conn.fetch(RECOUNT)] == []
        assert await conn.fetchval("SELECT count(*) FROM task_events WHERE task_id = $1", task_id) == 0


async def test_unknown_task_has_no_history(pool):
    assert await statuses_seen(pool, uuid.uuid4()) == []


async def test_one_statement_changing_many_tasks_records_each_change(pool):
    ids = [await new_task(pool, priority=priority) for priority in ("LOW", "LOW", "HIGH", "MEDIUM")]
    async with pool.acquire() as conn:
        # Three tasks change status in one statement (two of one status x priority), the fourth only its
        # updated_at; then one statement moves a status and a priority at once.
        await conn.execute("UPDATE tasks SET status = 'PENDING' WHERE id = ANY($1)", ids[:3])
        await conn.execute("UPDATE tasks SET updated_at = now() WHERE id = $1", ids[3])
        await conn.execute("UPDATE tasks SET status = 'CANCELLED', finished_at = now(), priority = 'HIGH' "
                           "WHERE id = ANY($1)", ids[1:3])
        assert [dict(m) for m in await conn.fetch(RECOUNT)] == []
    assert [await statuses_seen(pool, task_id) for task_id in ids] == [
        ["NEW", "PENDING"], ["NEW", "PENDING", "CANCELLED"], ["NEW", "PENDING", "CANCELLED"], ["NEW"]]


async def test_one_statement_inserting_many_tasks_counts_and_records_each(pool):
    async with pool.acquire() as conn:
        ids = await conn.fetchval(
            "WITH inserted AS (INSERT INTO tasks (name, kind, timeout_seconds, priority) "
            "SELECT 'bulk', 'noop', 60, p FROM unnest(ARRAY['LOW', 'LOW', 'HIGH']) AS p RETURNING id) "
            "SELECT array_agg(id) FROM inserted")
        assert [dict(m) for m in await conn.fetch(RECOUNT)] == []
    assert [await statuses_seen(pool, task_id) for task_id in ids] == [["NEW"]] * 3
