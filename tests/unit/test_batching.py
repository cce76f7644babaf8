"""The Batcher groups concurrent writes; one bad item must not fail the others. And the worker's
message parser turns away what would fail a whole claim batch in the database."""

import asyncio

import orjson
import pytest

from taskservice.batching import Batcher
from taskservice.broker import parse_task_message


async def test_items_submitted_together_are_written_together():
    batches = []

    async def write(items):
        batches.append(items)
        return [item * 10 for item in items]

    batcher = Batcher(write, max_size=3)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert batches == [[0, 1, 2], [3, 4]]


async def test_a_failing_batch_is_written_again_item_by_item():
    batches = []

    async def write(items):
        batches.append(items)
        if "bad" in items:
            raise ValueError("bad item")
        return [item.upper() for item in items]

    batcher = Batcher(write, max_size=10)
    results = await asyncio.gather(*(batcher.submit(item) for item in ("a", "bad", "c")), return_exceptions=True)
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError)
    assert batches == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


@pytest.mark.parametrize("outbox_id", [True, 0, -1, 2**63, "5", 1.0, None])
def test_a_message_without_a_bigint_outbox_id_is_not_a_task_message(outbox_id):
    with pytest.raises(ValueError, match="not a task message"):
        parse_task_message(orjson.dumps({"task_id": "x", "outbox_id": outbox_id}))


def test_a_task_message_is_parsed():
    body = orjson.dumps({"task_id": "3f1c", "outbox_id": 2**63 - 1})
    assert parse_task_message(body) == ("3f1c", 2**63 - 1)


async def test_a_batch_the_split_rule_refuses_fails_every_caller_and_is_not_written_again():
    batches = []

    async def write(items):
        batches.append(items)
        raise ConnectionError("lost after sending")

    batcher = Batcher(write, max_size=10, split=lambda exc: not isinstance(exc, ConnectionError))
    results = await asyncio.gather(*(batcher.submit(item) for item in "abc"), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    assert batches == [["a", "b", "c"]]


async def test_items_arriving_while_a_batch_is_written_go_to_a_second_writer():
    batches, in_flight, most = [], 0, 0
    release = asyncio.Event()

    async def write(items):
        nonlocal in_flight, most
        batches.append(items)
        in_flight += 1
        most = max(most, in_flight)
        await release.wait()
        in_flight -= 1
        return items

    batcher = Batcher(write, max_size=10, writers=2)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)  # the first writer takes [1] and waits in write
    await asyncio.sleep(0)
    rest = asyncio.gather(*(batcher.submit(n) for n in (2, 3)))
    while len(batches) < 2:
        await asyncio.sleep(0)
    more = asyncio.gather(*(batcher.submit(n) for n in (4, 5)))  # both writers busy: they wait
    await asyncio.sleep(0)
    release.set()
    assert (await first, await rest, await more) == (1, [2, 3], [4, 5])
    assert batches == [[1], [2, 3], [4, 5]] and most == 2
    assert not batcher.writers


async def test_what_waits_beyond_one_batch_goes_to_a_free_writer():
    batches, in_flight, most = [], 0, 0

    async def write(items):
        nonlocal in_flight, most
        batches.append(items)
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return items

    batcher = Batcher(write, max_size=2, writers=3)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(6))) == list(range(6))
    assert batches == [[0, 1], [2, 3], [4, 5]] and most == 3  # at once, not one after another


async def test_a_submit_right_after_the_last_batch_is_written():
    """A caller woken by its result submits again before the writer's task has finished: the writer
    must already count as free, or the new item would wait for a writer that never comes."""
    async def write(items):
        await asyncio.sleep(0)
        return items

    batcher = Batcher(write, max_size=10, writers=1)

    async def one_after_another():
        return [await batcher.submit(n) for n in range(20)]

    assert await asyncio.wait_for(one_after_another(), 2) == list(range(20))
    assert not batcher.writers
