"""Named queues: a task's queue (as sent, else its kind's, else `default`), one RabbitMQ priority queue
per task queue, workers that consume only the queues they are given, and the list, stream and stats
per queue."""

import asyncio
import dataclasses
import uuid

import aio_pika
import pytest

from taskservice import broker, dispatcher, events, tasks, worker
from taskservice.api.app import create_app
from tests.support.execution import (
    broker_admin,
    close_broker_connections,
    new_task,
    ready_messages,
    wait_for_status,
)
from tests.support.sse import EventReader

TASKS = "/api/v1/tasks/"
TEST_HANDLERS = ("tests.support.handlers_for_tests",)


@pytest.fixture
async def kinds_client(aiohttp_client, settings):
    """An API that loads the test handler modules: send_email declares queue "emails"."""
    return await aiohttp_client(create_app(dataclasses.replace(settings, handler_modules=TEST_HANDLERS)))


async def create(client, **body) -> dict:
    resp = await client.post(TASKS, json={"name": "q", **body})
    assert resp.status == 201, await resp.text()
    return await resp.json()


EMAIL = {"to": "a@example.com", "subject": "hi"}


async def test_the_queue_is_as_sent_else_the_kinds_else_default(kinds_client):
    assert (await create(kinds_client, kind="send_email", payload=EMAIL))["queue"] == "emails"
    assert (await create(kinds_client, kind="send_email", payload=EMAIL, queue="reports"))["queue"] == "reports"
    assert (await create(kinds_client, kind="echo"))["queue"] == "default"
    assert (await create(kinds_client, kind="echo", queue=None))["queue"] == "default"
    resp = await kinds_client.post(f"{TASKS}batch", json={"tasks": [
        {"name": "a", "kind": "send_email", "payload": EMAIL}, {"name": "b", "kind": "echo", "queue": "x.y:z-1"},
        {"name": "c", "kind": "echo"}]})
    assert resp.status == 201
    assert [item["queue"] for item in (await resp.json())["items"]] == ["emails", "x.y:z-1", "default"]


@pytest.mark.parametrize("queue", ["", "has space", "ü", "x" * 101, 7])
async def test_a_bad_queue_name_is_a_422_naming_the_field(kinds_client, queue):
    resp = await kinds_client.post(TASKS, json={"name": "q", "queue": queue})
    assert resp.status == 422
    assert list((await resp.json())["errors"]) == ["queue"]
    resp = await kinds_client.post(f"{TASKS}batch", json={"tasks": [{"name": "ok"}, {"name": "q", "queue": queue}]})
    assert resp.status == 422
    assert list((await resp.json())["errors"]) == ["tasks.1.queue"]


async def test_kinds_show_the_queue_a_create_gets(kinds_client):
    items = {item["kind"]: item for item in (await (await kinds_client.get("/api/v1/kinds")).json())["items"]}
    assert items["send_email"]["queue"] == "emails"
    assert items["noop"]["queue"] == items["echo"]["queue"] == "default"


async def test_an_idempotent_replay_keeps_matching_after_queues_came_in(client):
    """The request fingerprint leaves out the default queue, so keys taken before stay valid."""
    headers = {"Idempotency-Key": "queues-replay"}
    first = await client.post(TASKS, json={"name": "i"}, headers=headers)
    again = await client.post(TASKS, json={"name": "i", "queue": "default"}, headers=headers)
    assert (first.status, again.status) == (201, 200)
    other = await client.post(TASKS, json={"name": "i", "queue": "emails"}, headers=headers)
    assert other.status == 409


async def stats_of(client, queue: str) -> dict | None:
    """The queue's entry in /api/v1/stats; None when it has no task waiting or running (other
    tests' tasks in the shared database may still list it)."""
    body = await (await client.get("/api/v1/stats")).json()
    return next((item for item in body["queues"] if item["queue"] == queue), None)


async def test_a_worker_runs_only_its_queues_and_the_others_wait_visibly(pool, running, settings, client):
    running(dispatcher.main)
    running(worker.main, worker_queues=("emails",))
    emails = [await new_task(pool, f"e{i}", kind="echo", queue="emails") for i in range(3)]
    reports = await new_task(pool, "r", kind="echo", queue="reports")
    plain = await new_task(pool, "d", kind="echo")
    await wait_for_status(pool, emails, "COMPLETED")
    await wait_for_status(pool, [reports, plain], "PENDING")
    # Published, and waiting in their own RabbitMQ queues, which no one consumes.
    async with asyncio.timeout(10):
        while (await ready_messages(settings, "reports"), await ready_messages(settings)) != (1, 1):
            await asyncio.sleep(0.05)
    reports_stats = await stats_of(client, "reports")
    assert (reports_stats["PENDING"], reports_stats["IN_PROGRESS"], reports_stats["depth"]) == (1, 0, 1)
    emails_stats = await stats_of(client, "emails")
    assert emails_stats is None or emails_stats["depth"] == 0, emails_stats
    assert (await stats_of(client, "default"))["depth"] == 1

    running(worker.main, worker_queues=("reports", "default"), worker_id="second-worker")
    await wait_for_status(pool, [reports, plain], "COMPLETED")
    assert (await stats_of(client, "reports"))["PENDING"] == 0


async def test_a_backlog_in_one_queue_does_not_delay_another(pool, running, settings):
    """1,000 tasks wait in `reports` behind a slow worker; an `emails` task still completes at once
    through the emails worker (a generous deadline: it never waits behind the backlog)."""
    running(dispatcher.main)
    running(worker.main, worker_queues=("reports",), worker_concurrency=1, worker_id="reports-worker")
    running(worker.main, worker_queues=("emails",), worker_id="emails-worker")
    backlog = [{"name": f"r{i}", "description": None, "priority": "HIGH", "kind": "sleep",
                "payload": {"seconds": 0.5}, "max_attempts": 1, "timeout_seconds": 60, "run_at": None,
                "queue": "reports"} for i in range(1000)]
    async with pool.acquire() as conn:
        rows = await tasks.create_many(conn, backlog, [None] * 1000, [None] * 1000)
    backlog_ids = [row["id"] for row in rows]
    async with asyncio.timeout(30):  # the whole backlog is in its RabbitMQ queue
        while await ready_messages(settings, "reports") < 900:
            await asyncio.sleep(0.1)

    email = await new_task(pool, "e", kind="echo", priority="LOW", queue="emails")
    await wait_for_status(pool, [email], "COMPLETED", timeout=15)
    async with pool.acquire() as conn:
        waiting = await conn.fetchval("SELECT count(*) FROM tasks WHERE id = ANY($1) AND status = 'PENDING'",
                                      backlog_ids)
    assert waiting >= 900  # the backlog was still there when the email went through


async def test_the_list_filters_by_queue(client):
    # Queues of this test's own: the database is shared with the other tests.
    a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    made = {queue: [(await create(client, queue=queue))["id"] for _ in range(2)] for queue in (a, b, "default")}
    resp = await client.get(TASKS, params={"queue": a})
    assert resp.status == 200
    body = await resp.json()
    assert [item["id"] for item in body["items"]] == made[a][::-1]  # newest first
    assert (body["total"], body["total_exact"]) == (2, True)
    resp = await client.get(TASKS, params=[("queue", a), ("queue", b)])
    assert {item["id"] for item in (await resp.json())["items"]} == {*made[a], *made[b]}
    resp = await client.get(TASKS, params={"queue": b, "status": "COMPLETED"})
    assert (await resp.json())["items"] == []
    resp = await client.get(TASKS, params={"queue": b, "status": "NEW", "priority": "MEDIUM", "search": "q"})
    body = await resp.json()
    assert {item["id"] for item in body["items"]} == set(made[b]) and body["total"] == 2
    resp = await client.get(TASKS, params={"queue": "no such!"})
    assert resp.status == 422 and list((await resp.json())["errors"]) == ["queue.0"]


async def test_the_list_counts_a_queue_up_to_the_search_count_limit(aiohttp_client, settings):
    limited = await aiohttp_client(create_app(dataclasses.replace(settings, search_count_limit=3)))
    queue = f"c-{uuid.uuid4().hex[:8]}"
    for _ in range(4):
        await create(limited, queue=queue)
    body = await (await limited.get(TASKS, params={"queue": queue})).json()
    assert (body["total"], body["total_exact"]) == (3, False)


async def test_the_stream_filters_by_queue_live_and_on_resume(client, pool):
    async with pool.acquire() as conn:
        before = await events.latest_id(conn)
    other = await create(client, queue="reports")
    mine = await create(client, queue="emails")
    resp = await client.get("/api/v1/tasks/stream", params={"queue": "emails", "last_event_id": str(before)})
    assert resp.status == 200
    reader = EventReader(resp)
    replayed, ready = await reader.until_ready()
    assert [m.json()["task_id"] for m in replayed] == [mine["id"]]
    assert replayed[0].json()["queue"] == "emails"
    assert ready["resumed"] is True
    await create(client, queue="reports")
    live = await create(client, queue="emails")
    event = (await reader.next_event()).json()
    assert (event["task_id"], event["queue"], event["status"]) == (live["id"], "emails", "NEW")
    assert other["id"] != event["task_id"]
    resp.close()


async def test_queues_are_declared_again_after_rabbitmq_closes_the_connections(pool, running, settings):
    """The dispatcher declares a queue before its first message; after RabbitMQ drops its
    connections and the queue is gone, it declares it again rather than losing messages."""
    how = await broker_admin(settings.amqp_url)
    if how is None:
        pytest.skip("closing a connection from RabbitMQ's side needs its management API on port 15672 "
                    "or rabbitmqctl on this machine; neither is available")
    running(dispatcher.main)
    first = await new_task(pool, "before", kind="echo", queue="reports")
    await wait_for_status(pool, [first], "PENDING")
    async with asyncio.timeout(10):
        while await ready_messages(settings, "reports") != 1:
            await asyncio.sleep(0.05)
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(broker.queue_name(settings, "reports"))  # its message goes with it
    assert await close_broker_connections(settings.amqp_url, broker.process_connection_name()) >= 1, how

    running(worker.main, worker_queues=("reports",))
    second = await new_task(pool, "after", kind="echo", queue="reports")
    await wait_for_status(pool, [second], "COMPLETED", timeout=30)
    assert await close_broker_connections(settings.amqp_url, worker.broker_connection_name(settings)) == 1, how
    third = await new_task(pool, "after the worker's reconnect", kind="echo", queue="reports")
    await wait_for_status(pool, [third], "COMPLETED", timeout=30)
