"""GET /api/v1/stats: counts by status and priority, outbox backlog, queue depth (or null)."""

import asyncio
import dataclasses
import socket

import aio_pika

from taskservice import broker
from taskservice.api.app import create_app
from taskservice.tasks import PRIORITIES, STATUSES

STATS = "/api/v1/stats"


async def stats(client) -> dict:
    resp = await client.get(STATS)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return await resp.json()


async def test_counts_match_the_table(client, pool):
    for priority in ("LOW", "HIGH", "HIGH"):
        assert (await client.post("/api/v1/tasks/", json={"name": "counted", "priority": priority})).status == 201
    body = await stats(client)
    assert set(body["counts"]) == set(STATUSES)
    assert all(set(by_priority) == set(PRIORITIES) for by_priority in body["counts"].values())
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT status, priority, count(*) AS n FROM tasks GROUP BY 1, 2")
    expected = {status: dict.fromkeys(PRIORITIES, 0) for status in STATUSES}
    for row in rows:
        expected[row["status"]][row["priority"]] = row["n"]
    assert body["counts"] == expected
    assert body["total"] == sum(row["n"] for row in rows)


async def test_counts_follow_a_status_change(client):
    task = await (await client.post("/api/v1/tasks/", json={"name": "moved", "priority": "LOW"})).json()
    before = (await stats(client))["counts"]
    await client.delete(f"/api/v1/tasks/{task['id']}")
    after = (await stats(client))["counts"]
    assert after["NEW"]["LOW"] == before["NEW"]["LOW"] - 1
    assert after["CANCELLED"]["LOW"] == before["CANCELLED"]["LOW"] + 1


async def test_outbox_backlog_and_its_age(client, pool):
    await client.post("/api/v1/tasks/", json={"name": "due"})
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO outbox (task_id, priority, available_at) "
                           "SELECT id, priority, now() - interval '90 seconds' FROM tasks LIMIT 1")
        due = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL AND available_at <= now()")
    body = await stats(client)
    assert body["outbox_backlog"] == due >= 2
    assert body["outbox_oldest_due_age_seconds"] >= 90


async def test_queue_depth_as_rabbitmq_reports_it_cached_for_a_second(client, settings):
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        topology = await broker.declare_topology(channel, settings)
        for _ in range(3):
            await topology.exchange.publish(aio_pika.Message(b"{}"), settings.amqp_queue)
        await asyncio.sleep(0.2)  # RabbitMQ's count lags the publish a little
        assert (await stats(client))["queue_depth"] == 3
        await topology.exchange.publish(aio_pika.Message(b"{}"), settings.amqp_queue)
        assert (await stats(client))["queue_depth"] == 3  # cached
        await asyncio.sleep(1.1)
        assert (await stats(client))["queue_depth"] == 4


async def test_queue_depth_is_null_before_the_queue_exists(client):
    assert (await stats(client))["queue_depth"] is None


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_broker_down_gives_null_depth_not_an_error(aiohttp_client, settings):
    client = await aiohttp_client(create_app(dataclasses.replace(
        settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{closed_port()}/")))
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(3):
        body = await stats(client)
        assert body["queue_depth"] is None and body["total"] >= 0
    assert loop.time() - started < 3

