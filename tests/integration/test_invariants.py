"""The fault tests' invariants (tests/support/invariants.py) catch what they are meant to catch."""

import uuid

from tests.support.execution import new_task
from tests.support.invariants import TRANSITIONS, history_problem, violations

# A run of one attempt to completion, written by hand: NEW -> PENDING -> IN_PROGRESS -> COMPLETED.
DISPATCH = "UPDATE tasks SET status = 'PENDING' WHERE id = $1"
CLAIM = ("UPDATE tasks SET status = 'IN_PROGRESS', attempts = attempts + 1, started_at = now(), "
         "lease_expires_at = now() + interval '1 minute' WHERE id = $1")
COMPLETE = ("UPDATE tasks SET status = 'COMPLETED', finished_at = now(), lease_expires_at = NULL "
            "WHERE id = $1")
PUBLISH = "UPDATE outbox SET published_at = now() WHERE task_id = $1"


async def test_a_clean_run_breaks_nothing(pool):
    task_id = await new_task(pool)
    async with pool.acquire() as conn:
        for step in (DISPATCH, PUBLISH, CLAIM, COMPLETE):
            await conn.execute(step, task_id)
        try:
            assert await violations(conn, [task_id], {task_id: 1}) == {}
        finally:
            await conn.execute("DELETE FROM tasks WHERE id = $1", task_id)


async def test_lost_stuck_and_undispatched_tasks_are_reported(pool):
    stuck = await new_task(pool)
    lost = uuid.uuid4()
    async with pool.acquire() as conn:
        try:
            found = await violations(conn, [stuck, lost])
        finally:
            await conn.execute("DELETE FROM tasks WHERE id = $1", stuck)
    assert found["lost"] == [lost]
    assert found["not final"] == [(stuck, "NEW")]
    assert [row["task_id"] for row in found["outbox due"]] == [stuck]
    assert set(found) == {"lost", "not final", "outbox due"}


async def test_handler_runs_must_match_attempts_unless_a_worker_died(pool):
    task_id = await new_task(pool)
    async with pool.acquire() as conn:
        for step in (DISPATCH, PUBLISH, CLAIM, COMPLETE):
            await conn.execute(step, task_id)
        try:
            never_ran = await violations(conn, [task_id], {})
            ran_twice = await violations(conn, [task_id], {task_id: 2})
        finally:
            await conn.execute("DELETE FROM tasks WHERE id = $1", task_id)
    assert never_ran == {"handler runs": [(task_id, "COMPLETED", "0 runs, 1 attempts")]}
    assert ran_twice == {"handler runs": [(task_id, "COMPLETED", "2 runs, 1 attempts")]}


async def test_a_skipped_lifecycle_step_is_an_illegal_history(pool):
    task_id = await new_task(pool)
    async with pool.acquire() as conn:
        await conn.execute(PUBLISH, task_id)
        await conn.execute("UPDATE tasks SET status = 'COMPLETED', finished_at = now() WHERE id = $1", task_id)
        try:
            found = await violations(conn, [task_id])
        finally:
            await conn.execute("DELETE FROM tasks WHERE id = $1", task_id)
    assert found == {"illegal history": [(task_id, "NEW -> COMPLETED is not a lifecycle step")]}


def test_a_history_must_chain_and_end_in_the_task_status():
    def event(from_status, status):
        return {"from_status": from_status, "status": status}

    assert history_problem([event(None, "NEW"), event("NEW", "PENDING")], "PENDING") is None
    assert history_problem([event(None, "NEW"), event("PENDING", "IN_PROGRESS")], "IN_PROGRESS") == \
        "PENDING -> IN_PROGRESS follows NEW"
    assert history_problem([event(None, "NEW")], "PENDING") == "history ends in NEW, the task is PENDING"
    assert history_problem([event(None, "PENDING")], "PENDING") == "None -> PENDING is not a lifecycle step"
    retried = [event(None, "NEW"), event("NEW", "PENDING"), event("PENDING", "IN_PROGRESS"),
               event("IN_PROGRESS", "FAILED"), event("FAILED", "PENDING")]
    assert history_problem(retried, "PENDING") == "FAILED -> PENDING is not a lifecycle step"
    with_retry = {**TRANSITIONS, "FAILED": frozenset({"PENDING"})}
    assert history_problem(retried, "PENDING", with_retry) is None
