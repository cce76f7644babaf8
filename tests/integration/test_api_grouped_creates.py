"""Concurrent single creates are written together (taskservice.api.creates): fewer commits, each
task as its own request would have written it, and one request's failure never another's."""

import asyncio
import uuid
from contextlib import asynccontextmanager

from taskservice import db
from taskservice.api import creates
from taskservice.handoff import Handoff

TASKS = "/api/v1/tasks/"


@asynccontextmanager
async def tasks_trigger(pool, body: str):
    """A BEFORE INSERT trigger on tasks for the test's duration: `body` is its plpgsql."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    async with pool.acquire() as conn:
        await conn.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} "
                           f"RETURN NEW; END $$; CREATE TRIGGER {name} BEFORE INSERT ON tasks "
                           f"FOR EACH ROW EXECUTE FUNCTION {name}()")
    try:
        yield
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP TRIGGER {name} ON tasks; DROP FUNCTION {name}()")


async def test_concurrent_creates_share_statements_and_each_gets_its_own_task(client, pool):
    marker = f"grouped-{uuid.uuid4().hex[:8]}"
    responses = await asyncio.gather(*(client.post(TASKS, json={"name": f"{marker}-{i}", "priority": "HIGH"})
                                       for i in range(50)))
    assert [r.status for r in responses] == [201] * 50
    answered = {(await r.json())["name"]: (await r.json())["id"] for r in responses}
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT t.id::text, t.name, t.xmin::text AS xmin,"
            " (SELECT count(*) FROM outbox o WHERE o.task_id = t.id AND o.priority = 'HIGH') AS outbox,"
            " (SELECT array_agg(e.status) FROM task_events e WHERE e.task_id = t.id) AS events"
            " FROM tasks t WHERE t.name LIKE $1", f"{marker}-%")
    assert {row["name"]: row["id"] for row in rows} == answered
    assert all(row["outbox"] == 1 and row["events"] == ["NEW"] for row in rows)
    assert len({row["xmin"] for row in rows}) < 50  # several tasks per transaction


async def test_a_create_the_database_refuses_fails_alone(client, pool):
    marker = f"refuse-{uuid.uuid4().hex[:8]}"
    async with tasks_trigger(pool, f"IF NEW.name = '{marker}-bad' THEN RAISE 'refused by a test'; END IF;"):
        names = [f"{marker}-{i}" for i in range(10)] + [f"{marker}-bad"] + [f"{marker}-{i}" for i in range(10, 20)]
        responses = await asyncio.gather(*(client.post(TASKS, json={"name": name}) for name in names))
    statuses = {name: r.status for name, r in zip(names, responses, strict=True)}
    assert statuses.pop(f"{marker}-bad") == 500
    assert set(statuses.values()) == {201}
    async with pool.acquire() as conn:
        written = await conn.fetchval("SELECT count(*) FROM tasks WHERE name LIKE $1", f"{marker}-%")
    assert written == 20


async def terminate_blocked_inserts(pool) -> int:
    """Terminate the backends waiting for a lock to insert into tasks, once one is; how many."""
    async with pool.acquire() as conn:
        while True:
            killed = await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                " FROM (SELECT DISTINCT pid FROM pg_locks WHERE relation = 'tasks'::regclass AND NOT granted) AS w")
            if killed:
                return killed
            await asyncio.sleep(0.01)


def create_arguments(name: str) -> dict:
    return {"name": name, "description": None, "priority": "MEDIUM", "kind": "noop", "payload": {},
            "max_attempts": 3, "timeout_seconds": 300, "run_at": None}


async def test_a_batch_cut_off_by_a_lost_connection_is_not_written_again(pool, settings):
    """The outcome of a statement whose connection died is unknown: writing its creates again
    could make two tasks of one request. Each of its callers gets the error, as a lone create would."""
    marker = f"cutoff-{uuid.uuid4().hex[:8]}"
    writers = await db.create_pool(settings)
    try:
        batcher = creates.batcher(writers, Handoff())
        async with pool.acquire() as locker:
            async with locker.transaction():
                await locker.execute("LOCK TABLE tasks IN EXCLUSIVE MODE")  # inserts wait
                # Submitted in one turn of the loop: one batch.
                batch = asyncio.gather(*(batcher.submit((create_arguments(f"{marker}-{i}"), None, None))
                                         for i in range(5)), return_exceptions=True)
                assert await terminate_blocked_inserts(pool) == 1
            results = await batch
    finally:
        await writers.close()
    assert all(isinstance(result, db.UNAVAILABLE_ERRORS) for result in results), results
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tasks WHERE name LIKE $1", f"{marker}-%") == 0


async def test_requests_whose_create_was_cut_off_get_503_and_the_others_their_task(client, pool):
    marker = f"cutoff-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as locker:
        async with locker.transaction():
            await locker.execute("LOCK TABLE tasks IN EXCLUSIVE MODE")
            requests = asyncio.gather(*(client.post(TASKS, json={"name": f"{marker}-{i}"}) for i in range(12)))
            await terminate_blocked_inserts(pool)
        responses = await requests
    answered = {r.status for r in responses}
    assert 503 in answered and answered <= {201, 503}
    created = {(await r.json())["id"] for r in responses if r.status == 201}
    async with pool.acquire() as conn:
        written = {str(row["id"]) for row in await conn.fetch("SELECT id FROM tasks WHERE name LIKE $1",
                                                               f"{marker}-%")}
    assert written == created  # a 503 wrote nothing; a 201 wrote its task, once
