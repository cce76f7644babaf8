"""A PENDING task whose confirmed message was lost (queue purged) is dispatched again by the
dispatcher's sweeper, but only while the queue is empty: a waiting backlog is never doubled."""

import asyncio

import aio_pika
import pytest
from prometheus_client import REGISTRY

from taskservice import dispatcher, worker
from taskservice.settings import SettingsError, load_settings
from tests.support.execution import new_task, statuses_seen, wait_for_status


async def outbox_rows_per_task(pool, ids) -> dict:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT task_id, count(*) AS n, count(published_at) AS published FROM outbox "
                                "WHERE task_id = ANY($1) GROUP BY task_id", ids)
    return {row["task_id"]: (row["n"], row["published"]) for row in rows}


async def wait_for_outbox(pool, ids, rows: int, timeout: float = 15) -> None:
    """Until every task has `rows` outbox rows, all published."""
    wanted = {task_id: (rows, rows) for task_id in ids}
    async with asyncio.timeout(timeout):
        while await outbox_rows_per_task(pool, ids) != wanted:
            await asyncio.sleep(0.05)


async def purge(settings) -> int:
    """Empty the task queue, as an operator or a lost broker node would; how many messages went."""
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(settings.amqp_queue, passive=True)
        return (await queue.purge()).message_count


def redispatched_total() -> float:
    return REGISTRY.get_sample_value("taskservice_tasks_redispatched_total") or 0.0


async def test_tasks_whose_messages_were_purged_are_dispatched_again_and_run_once(pool, running, settings):
    running(dispatcher.main, pending_redispatch_seconds=0.5)
    ids = [await new_task(pool, f"lost-{i}") for i in range(5)]
    await wait_for_outbox(pool, ids, rows=1)
    before = redispatched_total()

    assert await purge(settings) >= len(ids)
    await wait_for_outbox(pool, ids, rows=2)  # a fresh row each, published at once
    assert redispatched_total() - before >= len(ids)
    assert {row["status"] for row in (await wait_for_status(pool, ids, "PENDING")).values()} == {"PENDING"}

    running(worker.main)
    done = await wait_for_status(pool, ids, "COMPLETED")
    assert all(row["attempts"] == 1 for row in done.values())
    for task_id in ids:  # re-dispatching changed no status, so it recorded no event
        assert await statuses_seen(pool, task_id) == ["NEW", "PENDING", "IN_PROGRESS", "COMPLETED"]


async def test_tasks_waiting_in_a_busy_queue_are_not_dispatched_again(pool, running, settings):
    running(dispatcher.main, pending_redispatch_seconds=0.2)  # sweeps every 0.05 s
    ids = [await new_task(pool, f"waiting-{i}") for i in range(3)]
    await wait_for_outbox(pool, ids, rows=1)

    # Long past the threshold, with the messages still waiting (no worker): ~40 sweeps, none re-dispatches.
    await asyncio.sleep(2)
    assert await outbox_rows_per_task(pool, ids) == {task_id: (1, 1) for task_id in ids}

    # The sweeper was alive all along: once the queue is empty, it re-dispatches them.
    assert await purge(settings) >= len(ids)
    await wait_for_outbox(pool, ids, rows=2)


def test_pending_redispatch_seconds_is_validated():
    assert load_settings({}).pending_redispatch_seconds == 300
    assert load_settings({"PENDING_REDISPATCH_SECONDS": "0.5"}).pending_redispatch_seconds == 0.5
    for bad in ("0", "-1", "soon", "100000"):
        with pytest.raises(SettingsError, match="PENDING_REDISPATCH_SECONDS"):
            load_settings({"PENDING_REDISPATCH_SECONDS": bad})
