"""A worker that loses RabbitMQ while attempts run: the database owns a claimed attempt, so the
attempt keeps its lease, runs once and has its outcome recorded, and the worker consumes again
once the broker is back. The broker goes away through a TCP proxy that cuts the worker's
connection (a network fault), or by RabbitMQ itself closing it (an operator, a broker restart)."""

import asyncio
from urllib.parse import urlsplit

import aio_pika
import pytest

from taskservice import broker, dispatcher, worker
from tests.support import handlers_for_tests
from tests.support.execution import (
    TcpProxy,
    broker_admin,
    close_broker_connections,
    new_task,
    ready_messages,
    statuses_seen,
    wait_for_status,
)

# Short leases, renewed every half second: an outage of a few seconds outlasts several of them,
# so an attempt that stopped being renewed would go to the reaper well within the test.
LEASE_SECONDS = 1.5


@pytest.fixture
async def proxy(settings):
    parts = urlsplit(settings.amqp_url)
    proxy = TcpProxy(parts.hostname or "localhost", parts.port or 5672)
    await proxy.start()
    yield proxy
    await proxy.close()


def through(proxy: TcpProxy, settings) -> str:
    parts = urlsplit(settings.amqp_url)
    return parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}").geturl()


async def assert_ran_once(pool, task_id) -> None:
    row = (await wait_for_status(pool, [task_id], ("COMPLETED", "FAILED"), timeout=30))[task_id]
    assert (row["status"], row["error"]) == ("COMPLETED", None)
    assert row["attempts"] == 1
    assert await statuses_seen(pool, task_id) == ["NEW", "PENDING", "IN_PROGRESS", "COMPLETED"]
    assert handlers_for_tests.RUNS[str(task_id)] == 1


async def assert_consuming(pool) -> None:
    """The worker (each test's only one) takes new work: a task created now completes."""
    task_id = await new_task(pool, "after the outage")
    await wait_for_status(pool, [task_id], "COMPLETED", timeout=30)


async def test_attempt_outlives_a_cut_broker_connection(pool, running, settings, proxy):
    running(dispatcher.main)
    running(worker.main, amqp_url=through(proxy, settings), lease_seconds=LEASE_SECONDS)
    task_id = await new_task(pool, kind="counted_sleep", payload={"seconds": 3}, max_attempts=1)
    await wait_for_status(pool, [task_id], "IN_PROGRESS")
    proxy.cut()
    # The outcome is recorded while the broker is still unreachable: the database is enough.
    await assert_ran_once(pool, task_id)
    await asyncio.sleep(LEASE_SECONDS)  # and down a while longer: reconnects keep failing
    proxy.restore()
    await assert_consuming(pool)


@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_sync_and_process_attempts_outlive_a_cut_broker_connection(pool, running, settings, proxy,
                                                                         executor, tmp_path):
    runs_file = tmp_path / "runs"
    runs_file.touch()
    running(dispatcher.main)
    running(worker.main, amqp_url=through(proxy, settings), lease_seconds=LEASE_SECONDS)
    task_id = await new_task(pool, kind=f"counted_sleep_{executor}",
                             payload={"seconds": 3, "runs_file": str(runs_file)}, max_attempts=1)
    await wait_for_status(pool, [task_id], "IN_PROGRESS")
    proxy.cut()
    row = (await wait_for_status(pool, [task_id], ("COMPLETED", "FAILED"), timeout=30))[task_id]
    assert (row["status"], row["error"], row["attempts"]) == ("COMPLETED", None, 1)
    assert await statuses_seen(pool, task_id) == ["NEW", "PENDING", "IN_PROGRESS", "COMPLETED"]
    runs = handlers_for_tests.RUNS[str(task_id)] if executor == "thread" else len(runs_file.read_text().split())
    assert runs == 1
    proxy.restore()
    await assert_consuming(pool)


async def test_attempt_outlives_an_outage_longer_than_its_lease(pool, running, settings, proxy):
    running(dispatcher.main)
    running(worker.main, amqp_url=through(proxy, settings), lease_seconds=LEASE_SECONDS)
    task_id = await new_task(pool, kind="counted_sleep", payload={"seconds": 6}, max_attempts=3)
    await wait_for_status(pool, [task_id], "IN_PROGRESS")
    proxy.cut()
    await asyncio.sleep(2 * LEASE_SECONDS)
    row = (await wait_for_status(pool, [task_id], ("IN_PROGRESS", "PENDING", "COMPLETED", "FAILED")))[task_id]
    assert (row["status"], row["attempts"]) == ("IN_PROGRESS", 1)  # its lease renewed all along
    proxy.restore()  # before the handler ends: its outcome is recorded with the broker back
    await assert_ran_once(pool, task_id)
    await assert_consuming(pool)


async def test_attempt_outlives_rabbitmq_closing_the_connection(pool, running, settings):
    how = await broker_admin(settings.amqp_url)
    if how is None:
        pytest.skip("closing a connection from RabbitMQ's side needs its management API on port 15672 "
                    "or rabbitmqctl on this machine; neither is available")
    running(dispatcher.main)
    running(worker.main, lease_seconds=LEASE_SECONDS)
    task_id = await new_task(pool, kind="counted_sleep", payload={"seconds": 4}, max_attempts=1)
    await wait_for_status(pool, [task_id], "IN_PROGRESS")
    name = worker.broker_connection_name(settings)
    assert await close_broker_connections(settings.amqp_url, name) == 1, how
    await assert_ran_once(pool, task_id)
    await assert_consuming(pool)


async def test_everything_recovers_when_rabbitmq_closes_every_connection(pool, running, settings):
    """The dispatcher's connections (publisher, lost-message sweeper) and the worker's, closed by
    RabbitMQ while an attempt runs and tasks keep coming: every task completes, each run once."""
    how = await broker_admin(settings.amqp_url)
    if how is None:
        pytest.skip("closing a connection from RabbitMQ's side needs its management API on port 15672 "
                    "or rabbitmqctl on this machine; neither is available")
    running(dispatcher.main)
    running(worker.main, lease_seconds=LEASE_SECONDS)
    long_one = await new_task(pool, kind="counted_sleep", payload={"seconds": 4}, max_attempts=1)
    await wait_for_status(pool, [long_one], "IN_PROGRESS")
    before = [await new_task(pool, f"before-{i}", kind="counted_sleep", payload={"seconds": 0}) for i in range(5)]
    closed = await asyncio.gather(
        close_broker_connections(settings.amqp_url, broker.process_connection_name()),
        close_broker_connections(settings.amqp_url, worker.broker_connection_name(settings)))
    assert closed[0] >= 1 and closed[1] == 1, (how, closed)
    after = [await new_task(pool, f"after-{i}", kind="counted_sleep", payload={"seconds": 0}) for i in range(5)]
    rows = await wait_for_status(pool, [long_one, *before, *after], "COMPLETED", timeout=30)
    assert all(row["attempts"] == 1 for row in rows.values())
    assert all(handlers_for_tests.RUNS[str(task_id)] == 1 for task_id in rows)
    async with pool.acquire() as conn:
        runs = await conn.fetchval("SELECT count(*) FROM task_events WHERE task_id = ANY($1) "
                                   "AND status = 'IN_PROGRESS'", list(rows))
    assert runs == len(rows)


async def test_claim_committed_after_the_channel_closed_runs_once(pool, running, settings, proxy):
    """The connection drops between the claim and its ack: the ack is skipped, RabbitMQ redelivers
    the message, and the worker that receives it finds the task claimed and acks it."""
    dispatching = running(dispatcher.main)
    task_id = await new_task(pool, kind="counted_sleep", payload={"seconds": 1}, max_attempts=1)
    await wait_for_status(pool, [task_id], "PENDING")
    await dispatching.shutdown()
    async with pool.acquire() as holder, holder.transaction():
        # The worker's claim waits for this row lock, so the connection can go before it commits.
        await holder.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task_id)
        stopping = running(worker.main, amqp_url=through(proxy, settings), lease_seconds=LEASE_SECONDS)
        await wait_for_lock_waiter(pool)
        proxy.cut()
    running(dispatcher.main)  # (its reaper would take an attempt that nobody runs)
    await assert_ran_once(pool, task_id)  # (with the broker still away)
    proxy.restore()
    await assert_consuming(pool)
    await stopping.shutdown()
    assert await ready_messages(settings) == 0  # the redelivered copy was acked, not left or requeued
    async with pool.acquire() as conn:
        left = await conn.fetchval("SELECT count(*) FROM outbox WHERE task_id = $1", task_id)
    assert left == 1 and handlers_for_tests.RUNS[str(task_id)] == 1


async def wait_for_lock_waiter(pool, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while True:
            async with pool.acquire() as conn:
                if await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                       "AND wait_event_type = 'Lock'"):
                    return
            await asyncio.sleep(0.05)


async def test_stopping_without_the_broker_hands_back_what_it_holds(pool, running, settings, proxy):
    running(dispatcher.main)
    stopping = running(worker.main, amqp_url=through(proxy, settings), lease_seconds=LEASE_SECONDS,
                       shutdown_grace_seconds=0.3)
    task_id = await new_task(pool, kind="counted_sleep", payload={"seconds": 30})
    await wait_for_status(pool, [task_id], "IN_PROGRESS")
    proxy.cut()
    await asyncio.sleep(0.5)
    await stopping.shutdown()
    row = (await wait_for_status(pool, [task_id], ("PENDING", "IN_PROGRESS", "COMPLETED", "FAILED")))[task_id]
    assert (row["status"], row["attempts"]) == ("PENDING", 0)  # handed back, the attempt not counted


async def test_settling_a_message_whose_channel_closed_is_skipped(settings):
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        topology = await broker.declare_topology(channel, settings)
        await topology.exchange.publish(aio_pika.Message(b"m"), settings.amqp_queue)
        message = await topology.queues["default"].get(timeout=5)
        await channel.close()
        assert await broker.settle(message, "ack") is False
        channel = await connection.channel()
        queue = await channel.declare_queue(settings.amqp_queue, passive=True)
        again = await queue.get(timeout=5)  # RabbitMQ put it back
        assert again.body == b"m" and again.redelivered
        assert await broker.settle(again, "ack") is True

