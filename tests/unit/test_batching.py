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
