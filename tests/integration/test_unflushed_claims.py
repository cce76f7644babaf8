"""An idle worker's lone claim commits without waiting for the WAL flush, and its message is acked
only once a later synchronous commit has flushed the claim (worker.ack_once_flushed): until then a
database crash could lose the claim, so RabbitMQ must still hold the message."""

import asyncio
import contextlib
import uuid

import aio_pika
import asyncpg

from taskservice import tasks, worker
from taskservice.wakeups import AfterCommit
from tests.support.execution import new_task, publish_tasks, ready_messages, start, wait_for_status


async def outbox_id(pool: asyncpg.Pool, task_id: uuid.UUID) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT max(id) FROM outbox WHERE task_id = $1", task_id)


async def test_a_claim_asked_to_skip_the_flush_commits_without_it_and_says_so(pool):
    ids = [await new_task(pool, f"flush-{i}") for i in range(2)]
    async with pool.acquire() as conn:
        async with conn.transaction():
            [row] = await tasks.claim(conn, [(ids[0], await outbox_id(pool, ids[0]))], "this-worker", 30,
                                      unflushed=True)
            # For the statement's own transaction only.
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert row["status"] == "IN_PROGRESS" and not row["flushed"]
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        async with conn.transaction():
            [row] = await tasks.claim(conn, [(ids[1], await outbox_id(pool, ids[1]))], "this-worker", 30)
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert row["status"] == "IN_PROGRESS" and row["flushed"]


async def test_only_an_idle_workers_lone_claim_skips_the_flush(pool, settings):
    ids = [await new_task(pool, f"lone-{i}") for i in range(4)]
    messages = [(task_id, await outbox_id(pool, task_id)) for task_id in ids]
    running: dict = {}
    writes = worker.group_writes(pool, settings, AfterCommit(), running=running)
    lone = await writes.claims.submit(messages[0])
    assert not lone["flushed"]
    running[lone["id"]] = "an attempt"  # the worker is busy now
    assert (await writes.claims.submit(messages[1]))["flushed"]
    running.clear()
    together = await asyncio.gather(*(writes.claims.submit(message) for message in messages[2:]))
    assert [row["flushed"] for row in together] == [True, True]


async def claimed_task(pool, settings) -> asyncpg.Record:
    """A task this test's worker id claimed without waiting for the flush."""
    task_id = await new_task(pool, "claimed")
    async with pool.acquire() as conn:
        [row] = await tasks.claim(conn, [(task_id, await outbox_id(pool, task_id))], settings.worker_id, 30,
                                  unflushed=True)
    return row


async def test_flushing_a_claim_waits_until_the_wal_is_on_disk_through_it(pool, settings):
    """Right after an unflushed claim its commit may not be on disk yet (the WAL writer flushes it
    within wal_writer_delay); once flush_claim returns, the WAL is flushed past it."""
    task = await claimed_task(pool, settings)
    async with pool.acquire() as conn:
        written = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")  # past the claim's commit
        assert await tasks.flush_claim(conn, task["id"], task["attempts"], settings.worker_id)
        assert await conn.fetchval("SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn", written)
        # Not this worker's, or not this attempt: nothing to flush for, and the answer says so.
        assert not await tasks.flush_claim(conn, task["id"], task["attempts"], "another-worker")
        assert not await tasks.flush_claim(conn, task["id"], task["attempts"] + 1, settings.worker_id)


@contextlib.asynccontextmanager
async def one_delivery(settings):
    """A message on a queue of its own, received (unacked) on a channel, and a way to count what
    the queue holds ready once that channel is closed."""
    name = f"test-unflushed-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name)
        await channel.default_exchange.publish(aio_pika.Message(b"a task"), routing_key=name)
        message = await queue.get(timeout=5)

        async def ready_after_close() -> int:
            await channel.close()
            other = await connection.channel()
            return (await other.declare_queue(name, passive=True)).declaration_result.message_count

        try:
            yield message, ready_after_close
        finally:
            cleanup = await connection.channel()
            await cleanup.queue_delete(name)


async def test_the_message_stays_unacked_until_the_outcome_is_recorded_and_then_is_acked(pool, settings,
                                                                                       monkeypatch):
    monkeypatch.setattr(worker, "ACK_FLUSH_SECONDS", 30.0)
    task = await claimed_task(pool, settings)
    async with one_delivery(settings) as (message, ready_after_close):
        recorded = asyncio.get_running_loop().create_future()
        acking = asyncio.ensure_future(worker.ack_once_flushed(message, pool, settings, task, recorded))
        await asyncio.sleep(0.3)
        assert not acking.done()
        recorded.set_result(True)  # the outcome's synchronous commit flushed the claim
        await asyncio.wait_for(acking, 5)
        assert await ready_after_close() == 0


async def test_an_attempt_still_running_has_its_claim_flushed_and_its_message_acked(pool, settings):
    task = await claimed_task(pool, settings)
    async with one_delivery(settings) as (message, ready_after_close):
        recorded = asyncio.get_running_loop().create_future()  # never set: the attempt runs on
        await asyncio.wait_for(worker.ack_once_flushed(message, pool, settings, task, recorded), 5)
        assert await ready_after_close() == 0


async def test_a_message_not_yet_flushed_comes_back_when_its_channel_closes(pool, settings, monkeypatch):
    monkeypatch.setattr(worker, "ACK_FLUSH_SECONDS", 30.0)
    task = await claimed_task(pool, settings)
    async with one_delivery(settings) as (message, ready_after_close):
        recorded = asyncio.get_running_loop().create_future()
        acking = asyncio.ensure_future(worker.ack_once_flushed(message, pool, settings, task, recorded))
        try:
            await asyncio.sleep(0.3)
            assert await ready_after_close() == 1  # RabbitMQ still held it: requeued
        finally:
            acking.cancel()


async def test_a_message_whose_claim_was_lost_goes_back_to_the_queue(pool, settings):
    """As after a database crash that lost the claim: the task never reached this attempt."""
    task = dict(await claimed_task(pool, settings))
    task["attempts"] += 1  # an attempt whose claim is not there
    async with one_delivery(settings) as (message, ready_after_close):
        recorded = asyncio.get_running_loop().create_future()
        recorded.set_result(False)  # its outcome found the attempt not ours
        await asyncio.wait_for(worker.ack_once_flushed(message, pool, settings, task, recorded), 5)
        assert await ready_after_close() == 1


async def test_a_message_whose_claim_cannot_be_checked_goes_back_to_the_queue(pool, settings):
    """The database is unreachable when the flush is due: the message goes back, and whoever
    receives it claims the task again or, finding it claimed, acks it."""
    task = await claimed_task(pool, settings)
    unreachable = await asyncpg.create_pool("postgresql://postgres@127.0.0.1:1/none", min_size=0)
    try:
        async with one_delivery(settings) as (message, ready_after_close):
            recorded = asyncio.get_running_loop().create_future()
            recorded.set_result(False)
            await asyncio.wait_for(worker.ack_once_flushed(message, unreachable, settings, task, recorded), 5)
            assert await ready_after_close() == 1
    finally:
        await unreachable.close()


async def test_an_idle_workers_tasks_run_once_and_their_messages_are_acked(pool, settings):
    """Through a real worker: a quick task (acked after its outcome) and one that outlasts
    ACK_FLUSH_SECONDS (acked after a flush of its own). Unacked, their messages would be back in
    the queue once the worker's connection closed."""
    ids = [await new_task(pool, "idle quick"),
           await new_task(pool, "idle slow", kind="sleep", payload={"seconds": 0.3})]
    running = start(worker.main, settings)
    try:
        for task_id in ids:  # one at a time: the worker is idle for each claim
            await publish_tasks(settings, pool, [task_id])
            await wait_for_status(pool, [task_id], "COMPLETED")
    finally:
        await running.shutdown()
    assert await ready_messages(settings) == 0
    async with pool.acquire() as conn:
        attempts = await conn.fetch("SELECT attempts FROM tasks WHERE id = ANY($1)", ids)
    assert [row["attempts"] for row in attempts] == [1, 1]
