"""Failures of the parts: a worker killed mid-task, a broker outage, duplicate messages,
many dispatchers and workers at once, a worker stopping with work in hand."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aio_pika

from taskservice import broker, dispatcher, worker
from tests.support.execution import TcpProxy, new_task, publish_tasks, statuses_seen, wait_for_status

ROOT = Path(__file__).resolve().parent.parent.parent


def worker_subprocess(settings, worker_id: str, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "AMQP_URL": settings.amqp_url,
           "AMQP_EXCHANGE": settings.amqp_exchange, "AMQP_QUEUE": settings.amqp_queue,
           "LEASE_SECONDS": "1.5", "WORKER_ID": worker_id, "LOG_LEVEL": "info", "PYTHONPATH": str(ROOT)}
    with log_path.open("w") as log:
        return subprocess.Popen([sys.executable, "-m", "taskservice", "worker"], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)


async def test_task_of_a_killed_worker_is_rescued_and_completed(pool, running, settings, tmp_path):
    running(dispatcher.main)
    victim = worker_subprocess(settings, "doomed-worker", tmp_path / "worker.log")
    try:
        task_id = await new_task(pool, kind="sleep", payload={"seconds": 2})
        row = (await wait_for_status(pool, [task_id], "IN_PROGRESS", timeout=20))[task_id]
        assert row["worker_id"] == "doomed-worker"
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
    running(worker.main, lease_seconds=1.5)
    row = (await wait_for_status(pool, [task_id], "COMPLETED", timeout=20))[task_id]
    assert row["attempts"] == 2
    history = await statuses_seen(pool, task_id)
    assert history.count("IN_PROGRESS") == 2 and history.count("COMPLETED") == 1
    assert history[-3:] == ["PENDING", "IN_PROGRESS", "COMPLETED"]


async def test_broker_outage_delays_but_loses_nothing(pool, running, settings):
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    try:
        via_proxy = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        processes = [running(dispatcher.main, amqp_url=via_proxy), running(worker.main, amqp_url=via_proxy)]
        before = [await new_task(pool, f"before-{i}") for i in range(10)]
        await wait_for_status(pool, before, "COMPLETED")
        proxy.cut()
        during = [await new_task(pool, f"during-{i}") for i in range(20)]
        await asyncio.sleep(1.5)
        async with pool.acquire() as conn:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE task_id = ANY($1) AND published_at IS NULL", during)
        assert waiting == 20  # nothing published while the broker is unreachable, nothing dropped
        proxy.restore()
        after = [await new_task(pool, f"after-{i}") for i in range(10)]
        rows = await wait_for_status(pool, before + during + after, "COMPLETED", timeout=60)
        assert all(row["attempts"] == 1 for row in rows.values())
        for process in processes:
            await process.shutdown()
    finally:
        await proxy.close()


async def test_duplicate_message_runs_the_handler_once(pool, running, settings):
    dispatching = running(dispatcher.main)
    task_id = await new_task(pool)
    await wait_for_status(pool, [task_id], "PENDING")
    await dispatching.shutdown()
    await publish_tasks(settings, pool, [task_id])  # the same message a second time
    running(worker.main)
    await wait_for_status(pool, [task_id], "COMPLETED")
    await asyncio.sleep(0.5)  # let the second copy arrive and be skipped
    history = await statuses_seen(pool, task_id)
    assert history.count("IN_PROGRESS") == 1 and history.count("COMPLETED") == 1
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT attempts FROM tasks WHERE id = $1", task_id) == 1


async def test_two_dispatchers_and_two_workers_complete_each_task_once(pool, running):
    ids = [await new_task(pool, f"bulk-{i}") for i in range(500)]
    for _ in range(2):
        running(dispatcher.main, dispatch_batch_size=50)
    for _ in range(2):
        running(worker.main, worker_concurrency=8, worker_id=f"bulk-{uuid.uuid4().hex[:6]}")
    rows = await wait_for_status(pool, ids, "COMPLETED", timeout=60)
    assert all(row["attempts"] == 1 for row in rows.values())
    async with pool.acquire() as conn:
        runs = await conn.fetchval(
            "SELECT count(*) FROM task_events WHERE task_id = ANY($1) AND status = 'IN_PROGRESS'", ids)
        left = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE task_id = ANY($1) AND published_at IS NULL", ids)
    assert runs == 500
    assert left == 0


async def test_stopping_worker_hands_back_what_it_could_not_finish(pool, running):
    running(dispatcher.main)
    stopping = running(worker.main, shutdown_grace_seconds=0.3)
    task_id = await new_task(pool, kind="sleep", payload={"seconds": 30})
    await wait_for_status(pool, [task_id], "IN_PROGRESS")
    await stopping.shutdown()
    row = (await wait_for_status(pool, [task_id], ("PENDING", "IN_PROGRESS", "COMPLETED")))[task_id]
    assert row["status"] == "PENDING" and row["attempts"] == 0
    running(worker.main)
    row = (await wait_for_status(pool, [task_id], "IN_PROGRESS"))[task_id]
    assert row["attempts"] == 1


async def test_unparseable_message_goes_to_the_dead_letter_queue(running, settings):
    running(worker.main)
    await asyncio.sleep(0.5)
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        topology = await broker.declare_topology(channel, settings)
        await topology.exchange.publish(aio_pika.Message(b"not json"), settings.amqp_queue)
        for _ in range(50):
            message = await topology.dead_letter_queue.get(fail=False)
            if message is not None:
                break
            await asyncio.sleep(0.1)
        assert message is not None and message.body == b"not json"
        await message.ack()
