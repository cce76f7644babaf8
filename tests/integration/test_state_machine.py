"""The task state machine, one table: what each transition does to a task in each status.

Every case puts one task directly in a status (keeping the schema's CHECK constraints), runs the
real function from taskservice.tasks on it, and compares the task and its outbox rows before and
after, inside a transaction that is rolled back. A status added later has no column here and fails
`test_the_table_covers_every_status_the_schema_allows` until someone decides, for every
transition, what it does with it.
"""

import re
from uuid import UUID

import asyncpg
import pytest

from taskservice import limits, outbox, tasks

_ = "unchanged"
STATUSES = ("NEW", "PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED")

# A task in the column's status, after the row's transition: its new status, or _ when the
# transition leaves it alone. Where the status stays, the transition still acts: cancel records
# the request on a running task (cancel_requested_at), redispatch_lost gives a PENDING task a
# fresh outbox row.
CASES = {
    #                   NEW            PENDING        IN_PROGRESS    COMPLETED  FAILED     CANCELLED
    "mark_handed_off": ("PENDING",     _,             _,             _,         _,         _),
    "claim":           ("IN_PROGRESS", "IN_PROGRESS", _,             _,         _,         _),
    "limited_claim":   ("IN_PROGRESS", "IN_PROGRESS", _,             _,         _,         _),
    "complete":        (_,             _,             "COMPLETED",   _,         _,         _),
    "fail_attempt":    (_,             _,             "PENDING",     _,         _,         _),
    "hand_back":       (_,             _,             "PENDING",     _,         _,         _),
    "mark_cancelled":  (_,             _,             "CANCELLED",   _,         _,         _),
    "cancel":          ("CANCELLED",   "CANCELLED",   "IN_PROGRESS", _,         _,         _),
    "retry":           (_,             _,             _,             _,         "PENDING", "PENDING"),
    "reap_expired":    (_,             _,             "PENDING",     _,         _,         _),
    "redispatch_lost": (_,             "PENDING",     _,             _,         _,         _),
}  # fmt: skip

WORKER = "worker-1"
ATTEMPT = 1

# Every task carries the attempt and worker id the worker-side calls below pass, and its only
# outbox row was published an hour ago, so only its status decides what a transition does.
PUT_IN_STATUS = """
UPDATE tasks
SET status = $2,
    attempts = $3,
    worker_id = $4,
    started_at = now() - interval '1 hour',
    lease_expires_at = CASE WHEN $2 = 'IN_PROGRESS' THEN now() - interval '1 minute' END,
    finished_at = CASE WHEN $5 THEN now() - interval '1 minute' END,
    cancel_requested_at = CASE WHEN $2 = 'CANCELLED' THEN now() - interval '1 minute' END,
    updated_at = now() - interval '1 hour'
WHERE id = $1
"""
FINAL = ("COMPLETED", "FAILED", "CANCELLED")


async def task_in(conn: asyncpg.Connection, status: str) -> tuple[UUID, int]:
    """A task in `status` (lease expired if IN_PROGRESS), and the outbox id of its message."""
    row = await tasks.create(conn, name="state machine", description=None, priority="MEDIUM",
                             kind="noop", payload={}, max_attempts=3, timeout_seconds=60, run_at=None)
    outbox_id = await conn.fetchval(
        "UPDATE outbox SET available_at = now() - interval '1 hour', published_at = now() - interval '1 hour' "
        "WHERE task_id = $1 RETURNING id", row["id"])
    await conn.execute(PUT_IN_STATUS, row["id"], status, ATTEMPT, WORKER, status in FINAL)
    return row["id"], outbox_id


async def run(transition: str, conn: asyncpg.Connection, task_id: UUID, outbox_id: int) -> bool | None:
    """Run the real function; whether it reports acting on this task (None: it reports a count)."""
    match transition:
        case "mark_handed_off":  # its row confirmed by RabbitMQ, not yet marked published
            await conn.execute("UPDATE outbox SET published_at = NULL WHERE id = $1", outbox_id)
            return await outbox.mark_handed_off(conn, [outbox_id]) == 1
        case "claim":
            return (await tasks.claim(conn, [(task_id, outbox_id)], "worker-2", 60))[0] is not None
        case "limited_claim":  # a limit with room to spare: only the status decides
            await conn.execute("INSERT INTO kind_limits (kind, concurrency) VALUES ('noop', 10000) "
                               "ON CONFLICT (kind) DO UPDATE SET concurrency = 10000, rate_limit = NULL, "
                               "rate_period_seconds = NULL")
            assert await limits.lock(conn, [task_id]) == ["noop"]
            return (await limits.claim(conn, [(task_id, outbox_id)], "worker-2", 60, 1))[0] is not None
        case "complete":
            return (await tasks.complete(conn, [(task_id, ATTEMPT, {"ok": True})], WORKER))[0] is not None
        case "fail_attempt":
            return await tasks.fail_attempt(conn, task_id, ATTEMPT, WORKER, "boom", 0, True) is not None
        case "hand_back":
            return await tasks.hand_back(conn, task_id, ATTEMPT, WORKER) is not None
        case "mark_cancelled":
            return await tasks.mark_cancelled(conn, task_id, ATTEMPT, WORKER) is not None
        case "cancel":
            return (await tasks.cancel(conn, task_id))["changed"]
        case "retry":
            return (await tasks.retry(conn, task_id))["changed"]
        case "reap_expired":
            return task_id in {row["id"] for row in await tasks.reap_expired(conn, 10_000)}
        case "redispatch_lost":
            await tasks.redispatch_lost(conn, 60, 10_000, ["default"])
            return None
    raise AssertionError(transition)


async def observe(conn: asyncpg.Connection, task_id: UUID) -> tuple[dict, int]:
    task = dict(await conn.fetchrow("SELECT * FROM tasks WHERE id = $1", task_id))
    return task, await conn.fetchval("SELECT count(*) FROM outbox WHERE task_id = $1", task_id)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("transition", CASES)
async def test_transition(pool, transition, status):
    expected = CASES[transition][STATUSES.index(status)]
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            task_id, outbox_id = await task_in(conn, status)
            before = await observe(conn, task_id)
            reported = await run(transition, conn, task_id, outbox_id)
            after = await observe(conn, task_id)
        finally:
            await transaction.rollback()
    outcome = _ if after == before else after[0]["status"]
    assert outcome == expected, f"{transition} on a {status} task"
    if reported is not None:
        assert reported == (expected != _), f"{transition} on a {status} task reports the wrong outcome"


async def test_the_table_covers_every_status_the_schema_allows(pool):
    async with pool.acquire() as conn:
        checks = await conn.fetch("SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint "
                                  "WHERE conrelid = 'tasks'::regclass AND contype = 'c'")
    lists = [re.findall(r"'(\w+)'::text", c["def"]) for c in checks
             if re.match(r"CHECK \(\(status = ANY \(ARRAY\[", c["def"])]
    assert len(lists) == 1, checks
    assert sorted(lists[0]) == sorted(STATUSES) == sorted(tasks.STATUSES)
    assert all(len(row) == len(STATUSES) for row in CASES.values())
