"""Worker edge cases: what a busy worker holds, handlers that end in odd ways."""

import asyncio

from taskservice import dispatcher, worker
from tests.support.execution import new_task, publish_tasks, ready_messages, wait_for_status

TEST_HANDLERS = ("tests.support.handlers_for_tests",)


async def ready_messages_become(settings, expected: int, within: float = 5.0) -> int:
    """Ready messages once they reach `expected`, or what they are after `within` seconds: a
    full worker holds a delivery for worker.HOLD_SECONDS before it requeues it."""
    deadline = asyncio.get_running_loop().time() + within
    while (ready := await ready_messages(settings)) != expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return ready


async def test_a_busy_worker_leaves_waiting_messages_in_the_queue(pool, running, settings):
    ids = [await new_task(pool, f"long-{i}", kind="sleep", payload={"seconds": 30}) for i in range(3)]
    await publish_tasks(settings, pool, ids)
    running(worker.main, worker_concurrency=1, shutdown_grace_seconds=0)
    await wait_for_status(pool, ids[:1], "IN_PROGRESS")
    # One runs; the other two stay ready in RabbitMQ for any worker, none held unacked here.
    assert await ready_messages_become(settings, 2) == 2
    await asyncio.sleep(worker.HOLD_SECONDS * 2)
    assert await ready_messages(settings) == 2  # and stay there: the busy worker stopped consuming
    # A second worker takes a waiting task at once.
    running(worker.main, worker_concurrency=1, worker_id="second-worker", shutdown_grace_seconds=0)
    await wait_for_status(pool, ids[1:2], "IN_PROGRESS")
    assert await ready_messages_become(settings, 1) == 1


async def test_a_handler_raising_cancelled_error_fails_the_attempt(pool, running):
    running(dispatcher.main)
    running(worker.main)
    task_id = await new_task(pool, kind="raises_cancelled", max_attempts=2)
    row = (await wait_for_status(pool, [task_id], "FAILED"))[task_id]
    assert row["attempts"] == 2
    assert "CancelledError" in row["error"]


async def test_a_handlers_own_timeout_is_an_ordinary_failure(pool, running):
    running(dispatcher.main)
    running(worker.main)
    task_id = await new_task(pool, kind="raises_timeout", max_attempts=1, timeout_seconds=60)
    row = (await wait_for_status(pool, [task_id], "FAILED"))[task_id]
    assert row["error"] == "TimeoutError: upstream took too long"


async def test_a_delivery_cancelled_just_after_being_handed_a_slot_does_not_lose_it():
    # Slot accounting only: with no queues the consumer is taken as on, so nothing here talks to the broker.
    intake = worker.Intake(queues=(), on_message=None, free=1)
    assert await intake.take()
    waiting = asyncio.create_task(intake.take())
    await asyncio.sleep(0)  # it waits for a slot
    await intake.give_back()  # the slot goes to it...
    waiting.cancel()  # ...but its channel closes before it runs again
    await asyncio.gather(waiting, return_exceptions=True)
    assert waiting.cancelled()
    assert (intake.free, list(intake.waiting)) == (1, [])
