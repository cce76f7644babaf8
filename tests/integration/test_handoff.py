"""A create in an API process whose embedded dispatcher is publishing leases its outbox row to that
dispatcher in the create's own statement and hands the row over in memory (taskservice.handoff):
published without a claim, left alone by other dispatchers, and due again for any of them if the
process dies before publishing it."""

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from taskservice import broker, dispatcher, outbox, tasks, worker
from taskservice.api.app import create_app
from taskservice.api.keys import HANDOFF
from tests.support.execution import TcpProxy, statuses_seen, until, wait_for_status

ITEM = {"name": "handed over", "description": None, "priority": "MEDIUM", "kind": "echo", "payload": {},
        "max_attempts": 3, "timeout_seconds": 60, "run_at": None}


async def handing_over(aiohttp_client, settings, **overrides):
    """A client of an API whose embedded dispatcher is publishing: its creates hand rows over."""
    app = create_app(dataclasses.replace(settings, dispatcher_embedded=True, **overrides))
    client = await aiohttp_client(app)
    await until(lambda: app[HANDOFF].lease_seconds is not None)
    return client


async def create(client, name: str) -> dict:
    resp = await client.post("/api/v1/tasks/", json={"name": name, "kind": "echo"})
    assert resp.status == 201
    return await resp.json()


def through(proxy: TcpProxy) -> str:
    return f"amqp://guest:guest@127.0.0.1:{proxy.port}/"


async def test_a_create_hands_its_row_to_the_embedded_dispatcher_which_publishes_it(aiohttp_client, settings,
                                                                                 pool, running):
    client = await handing_over(aiohttp_client, settings)
    running(worker.main)
    task = await create(client, "handed over")
    assert task["status"] == "NEW"
    await wait_for_status(pool, [task["id"]], "COMPLETED")
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT available_at - created_at AS lease, published_at FROM outbox "
                                  "WHERE task_id = $1", task["id"])
    # Leased by the create's statement itself (a claim would lease it from a later now()).
    assert row["lease"] == timedelta(seconds=dispatcher.PUBLISH_LEASE_SECONDS)
    assert row["published_at"] is not None
    assert await statuses_seen(pool, task["id"]) == ["NEW", "PENDING", "IN_PROGRESS", "COMPLETED"]


async def test_a_handed_over_task_no_worker_takes_is_pending_once_rabbitmq_confirms_it(aiohttp_client, settings,
                                                                                        pool):
    client = await handing_over(aiohttp_client, settings)
    task = await create(client, "handed over, not taken")
    await wait_for_status(pool, [task["id"]], "PENDING")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT published_at IS NOT NULL FROM outbox WHERE task_id = $1", task["id"])
    assert await statuses_seen(pool, task["id"]) == ["NEW", "PENDING"]


async def test_a_row_leased_by_a_process_that_died_is_published_by_another_dispatcher_after_its_lease(
        pool, running):
    async with pool.acquire() as conn:  # as an API process that died before publishing leaves it
        [created] = await tasks.create_many(conn, [ITEM], [None], [None], lease_seconds=1.0)
    assert created["leased"]
    running(dispatcher.main)
    running(worker.main)
    await wait_for_status(pool, [created["id"]], "COMPLETED")
    async with pool.acquire() as conn:
        events = await tasks.events(conn, created["id"])
    assert [event["status"] for event in events] == ["NEW", "PENDING", "IN_PROGRESS", "COMPLETED"]
    # No dispatcher took it while the lease held.
    assert events[1]["created_at"] - events[0]["created_at"] >= timedelta(seconds=1)


async def test_only_tasks_due_now_are_leased(pool):
    later = datetime.now(UTC) + timedelta(hours=1)
    async with pool.acquire() as conn, conn.transaction():
        rows = await tasks.create_many(conn, [ITEM, {**ITEM, "run_at": later}, {**ITEM, "waiting_on": 1}],
                                       [None] * 3, [None] * 3, lease_seconds=30)
        due_at = {row["id"]: await conn.fetchval("SELECT available_at FROM outbox WHERE task_id = $1", row["id"])
                  for row in rows}
        unleased = await tasks.create_many(conn, [ITEM], [None], [None])
    assert [row["leased"] for row in rows] == [True, False, False]
    assert rows[0]["outbox_id"] is not None and rows[2]["outbox_id"] is None
    assert due_at[rows[1]["id"]] == later  # a scheduled task's row waits for its run_at, unleased
    assert due_at[rows[2]["id"]] is None  # a task waiting on a parent has no row yet
    assert not unleased[0]["leased"]


async def test_a_task_claimed_while_still_new_records_the_pending_it_passed_through(pool):
    """The dispatcher marks a handed-over task PENDING once RabbitMQ confirms its message: a quick
    worker claims it first. The message was published all the same, and the history says so."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            [created] = await tasks.create_many(conn, [ITEM], [None], [None], lease_seconds=30)
            [claimed] = await tasks.claim(conn, [(created["id"], created["outbox_id"])], "worker-1", 60)
            assert claimed["status"] == "IN_PROGRESS"
            # Too late: the row is marked published, the task keeps its status.
            assert await outbox.mark_handed_off(conn, [created["outbox_id"]]) == 0
            assert await conn.fetchval("SELECT published_at IS NOT NULL FROM outbox WHERE id = $1",
                                       created["outbox_id"])
            events = await tasks.events(conn, created["id"])
        finally:
            await transaction.rollback()
    assert [(e["from_status"], e["status"], e["attempt"]) for e in events] == [
        (None, "NEW", 0), ("NEW", "PENDING", 0), ("PENDING", "IN_PROGRESS", 1)]
    assert events[0]["id"] < events[1]["id"] < events[2]["id"]


async def test_a_broker_outage_delays_handed_over_rows_but_loses_none(aiohttp_client, settings, pool, running):
    """Rows handed over while RabbitMQ is unreachable fail to publish and go back to the outbox,
    where the dispatcher's claim publishes them once the broker is back: each task runs once."""
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    try:
        client = await handing_over(aiohttp_client, settings, amqp_url=through(proxy))
        running(worker.main)
        before = [(await create(client, f"before-{i}"))["id"] for i in range(5)]
        await wait_for_status(pool, before, "COMPLETED")
        proxy.cut()
        during = [(await create(client, f"during-{i}"))["id"] for i in range(10)]
        await asyncio.sleep(1.0)
        async with pool.acquire() as conn:
            unpublished = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE task_id = ANY($1::uuid[]) AND published_at IS NULL", during)
        assert unpublished == len(during)  # nothing dropped while the broker is unreachable
        async with pool.acquire() as conn:
            failed = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE task_id = ANY($1::uuid[]) AND publish_attempts > 0", during)
        assert failed > 0  # handed over, tried, and given back to the claim (the rest wait in a publish)
        proxy.restore()
        after = [(await create(client, f"after-{i}"))["id"] for i in range(5)]
        rows = await wait_for_status(pool, before + during + after, "COMPLETED", timeout=60)
        assert all(row["attempts"] == 1 for row in rows.values())
        for task_id in during:
            assert await statuses_seen(pool, task_id) == ["NEW", "PENDING", "IN_PROGRESS", "COMPLETED"]
    finally:
        proxy.restore()
        await client.close()  # while the proxy forwards: the dispatcher closes its connection
        await proxy.close()


async def test_an_api_stopped_while_rabbitmq_is_unreachable_stops_and_its_rows_run_later(
        aiohttp_client, settings, pool, running):
    """Its publishes of handed-over rows give up after broker.PUBLISH_TIMEOUT_SECONDS (a queue
    declare on a channel waiting to reconnect used to wait for good), and the rows go back to the
    outbox, where another dispatcher finds them."""
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    try:
        client = await handing_over(aiohttp_client, settings, amqp_url=through(proxy))
        proxy.cut()
        created = [(await create(client, f"stopping-{i}"))["id"] for i in range(5)]
        async with asyncio.timeout(3 * broker.PUBLISH_TIMEOUT_SECONDS):
            await client.close()
    finally:
        await proxy.close()
    running(dispatcher.main)
    running(worker.main)
    rows = await wait_for_status(pool, created, "COMPLETED", timeout=60)
    assert all(row["attempts"] == 1 for row in rows.values())
