"""The worker's batched writes: claims of messages that arrive together, completions of attempts
that finish together, each one statement in which every row keeps its own guard."""

import asyncio
import contextlib
import uuid

import asyncpg

from taskservice import tasks, worker
from taskservice.wakeups import AfterCommit
from tests.support.execution import new_task, publish_tasks, ready_messages, statuses_seen, until, wait_for_status


async def outbox_ids(pool, ids) -> list[int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT task_id, max(id) AS id FROM outbox WHERE task_id = ANY($1) GROUP BY task_id",
                                ids)
    by_task = {row["task_id"]: row["id"] for row in rows}
    return [by_task[task_id] for task_id in ids]


async def test_a_batch_claim_takes_only_the_claimable_tasks(pool):
    ids = [await new_task(pool, f"batch-{i}") for i in range(4)]
    messages = list(zip(ids, await outbox_ids(pool, ids), strict=True))
    async with pool.acquire() as conn:
        await tasks.cancel(conn, ids[0])
        assert await tasks.claim(conn, [messages[1]], "other-worker", 30) != [None]
        # The cancelled task, the one another worker holds, two fresh ones, and a duplicate message.
        claimed = await tasks.claim(conn, [*messages, messages[3]], "this-worker", 30)
    assert [row is not None for row in claimed] == [False, False, True, True, False]
    assert [row["id"] for row in claimed if row is not None] == ids[2:]
    rows = await wait_for_status(pool, ids, ("CANCELLED", "IN_PROGRESS"), timeout=1)
    assert [rows[task_id]["worker_id"] for task_id in ids] == [None, "other-worker", "this-worker", "this-worker"]
    assert [rows[task_id]["attempts"] for task_id in ids] == [0, 1, 1, 1]


async def test_a_batch_completion_writes_only_the_attempts_still_owned(pool):
    ids = [await new_task(pool, f"done-{i}") for i in range(3)]
    async with pool.acquire() as conn:
        await tasks.claim(conn, list(zip(ids, await outbox_ids(pool, ids), strict=True)), "this-worker", 30)
        # The second task's lease ran out and the reaper handed it back for another attempt (as
        # tasks/reap_expired.sql does; the reaper itself would also take other tests' tasks).
        await conn.execute("UPDATE tasks SET status = 'PENDING', worker_id = NULL, lease_expires_at = NULL "
                           "WHERE id = $1", ids[1])
        written = await tasks.complete(conn, [(task_id, 1, {"n": n}) for n, task_id in enumerate(ids)],
                                       "this-worker")
    assert [row and row["status"] for row in written] == ["COMPLETED", None, "COMPLETED"]
    rows = await wait_for_status(pool, ids, ("COMPLETED", "PENDING"), timeout=1)
    assert [rows[task_id]["status"] for task_id in ids] == ["COMPLETED", "PENDING", "COMPLETED"]
    assert [rows[task_id]["result"] for task_id in ids] == [{"n": 0}, None, {"n": 2}]
    assert await statuses_seen(pool, ids[1]) == ["NEW", "PENDING", "IN_PROGRESS", "PENDING"]


async def test_a_batch_completion_stores_every_kind_of_json_result(pool):
    # Lists among them: in an array parameter a list would read as one more dimension.
    results = [[1, 2], [], [{"a": 1}], {"a": [1, 2]}, "text", 3, None, True]
    ids = [await new_task(pool, f"shape-{i}") for i in range(len(results))]
    async with pool.acquire() as conn:
        await tasks.claim(conn, list(zip(ids, await outbox_ids(pool, ids), strict=True)), "this-worker", 30)
        written = await tasks.complete(conn, [(task_id, 1, result) for task_id, result in zip(ids, results,
                                                                                               strict=True)],
                                       "this-worker")
    assert [row and row["status"] for row in written] == ["COMPLETED"] * len(results)
    rows = await wait_for_status(pool, ids, "COMPLETED", timeout=1)
    assert [rows[task_id]["result"] for task_id in ids] == results


async def test_messages_that_claim_nothing_are_acked_with_the_rest(pool, running, settings):
    ids = [await new_task(pool, f"mixed-{i}") for i in range(6)]
    async with pool.acquire() as conn:
        await tasks.cancel(conn, ids[0])
        await tasks.claim(conn, [(ids[1], (await outbox_ids(pool, ids[1:2]))[0])], "other-worker", 30)
    await publish_tasks(settings, pool, ids)  # all six at once: the worker receives them together
    working = running(worker.main, worker_concurrency=8)
    await wait_for_status(pool, ids[2:], "COMPLETED")
    await working.shutdown()  # what it had not acked goes back to the queue
    assert await ready_messages(settings) == 0
    rows = await wait_for_status(pool, ids[:2], ("CANCELLED", "IN_PROGRESS"), timeout=1)
    assert [rows[task_id]["status"] for task_id in ids[:2]] == ["CANCELLED", "IN_PROGRESS"]
    assert rows[ids[1]]["worker_id"] == "other-worker"


@contextlib.asynccontextmanager
async def listening_api(pool, settings):
    """What an API process with a wait open does: a live stream_listeners row, and LISTEN
    task_events. Yields the payloads heard."""
    heard: list[str] = []
    listener, row = await asyncpg.connect(settings.database_url), uuid.uuid4()
    await listener.add_listener("task_events", lambda *args: heard.append(args[3]))
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO stream_listeners (listener, expires_at) "
                           "VALUES ($1, now() + interval '1 minute')", row)
    try:
        yield heard
    finally:
        await listener.close()
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM stream_listeners WHERE listener = $1", row)


def naming(heard: list[str], ids) -> list[str]:
    """The payloads heard that name some of these tasks (other processes may announce meanwhile)."""
    hexes = {task_id.hex for task_id in ids}
    return [payload for payload in heard if hexes & set(payload.partition(" ")[2].split(","))]


async def test_a_completion_announces_itself_when_asked_while_an_api_process_listens(pool, settings):
    ids = [await new_task(pool, f"told-{i}") for i in range(3)]
    async with listening_api(pool, settings) as heard, pool.acquire() as conn:
        await tasks.claim(conn, list(zip(ids, await outbox_ids(pool, ids), strict=True)), "this-worker", 30)
        told = await tasks.complete(conn, [(ids[0], 1, None), (ids[1], 1, None)], "this-worker", announce_as="")
        assert [row["announced"] for row in told] == [True, True]
        await until(lambda: naming(heard, ids), timeout=5)
        [payload] = naming(heard, ids)  # as announce names them, in no particular order
        assert payload.startswith(" ") and sorted(payload[1:].split(",")) == sorted(t.hex for t in ids[:2])
        untold = await tasks.complete(conn, [(ids[2], 1, None)], "this-worker")  # not asked
        assert [row["announced"] for row in untold] == [False]
        stale = await tasks.complete(conn, [(ids[2], 1, None)], "this-worker", announce_as="")  # not ours now
        assert stale == [None]
        await asyncio.sleep(0.2)
        assert len(naming(heard, ids)) == 1


async def test_with_no_api_process_listening_a_completion_announces_nothing(pool):
    task_id = await new_task(pool, "untold")
    async with pool.acquire() as conn:
        await tasks.claim(conn, [(task_id, (await outbox_ids(pool, [task_id]))[0])], "this-worker", 30)
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("DELETE FROM stream_listeners")  # (other tests' rows; rolled back)
            [row] = await tasks.complete(conn, [(task_id, 1, None)], "this-worker", announce_as="")
        finally:
            await transaction.rollback()
    assert row["status"] == "COMPLETED" and not row["announced"]


async def test_an_idle_workers_completion_leaves_nothing_to_announce_after_its_commit(pool, settings):
    """The claim's IN_PROGRESS, put off to be announced with the outcome, is covered by the
    completion's own NOTIFY; a worker with an announcement already waiting announces as usual."""
    ids = [await new_task(pool, f"idle-{i}") for i in range(2)]
    committed = AfterCommit()
    writes = worker.group_writes(pool, settings, committed)
    async with listening_api(pool, settings) as heard:
        task = await writes.claims.submit((ids[0], (await outbox_ids(pool, ids[:1]))[0]))
        committed.soon()  # as handle_message does after a claim
        row = await writes.completions.submit((task["id"], task["attempts"], None))
        assert row["announced"] and not committed.is_set() and committed.timer is None
        await until(lambda: naming(heard, ids), timeout=5)
        assert naming(heard, ids) == [" " + ids[0].hex]

        task = await writes.claims.submit((ids[1], (await outbox_ids(pool, ids[1:]))[0]))
        committed.set()  # waiting for the sending loop (none runs here)
        row = await writes.completions.submit((task["id"], task["attempts"], None))
        assert row["status"] == "COMPLETED" and not row["announced"]
        await asyncio.sleep(0.2)
        assert naming(heard, ids) == [" " + ids[0].hex]
