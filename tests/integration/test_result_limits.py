"""A handler result that cannot be stored (over MAX_RESULT_BYTES, or holding NUL) fails the
attempt with a clear error instead of bloating or breaking the task row."""

import dataclasses

import pytest

from taskservice import dispatcher, worker
from taskservice.worker import unstorable_result
from tests.support.execution import new_task, start, wait_for_status


@pytest.fixture
async def pipeline(settings):
    settings = dataclasses.replace(settings, handler_modules=("tests.support.handlers_for_tests",),
                                   max_result_bytes=1000)
    started = [start(dispatcher.main, settings), start(worker.main, settings)]
    yield
    for process in started:
        await process.shutdown()


async def test_an_oversized_result_fails_the_attempt(pool, pipeline):
    task_id = await new_task(pool, kind="big_result", payload={"bytes": 5000}, max_attempts=2)
    row = (await wait_for_status(pool, [task_id], "FAILED"))[task_id]
    assert row["result"] is None
    assert row["attempts"] == 2  # each attempt failed the same way, then no budget was left
    assert row["error"] == "handler result is 5011 bytes, more than MAX_RESULT_BYTES=1000"


async def test_a_result_within_the_limit_is_stored(pool, pipeline):
    task_id = await new_task(pool, kind="big_result", payload={"bytes": 900})
    row = (await wait_for_status(pool, [task_id], "COMPLETED"))[task_id]
    assert row["result"] == {"blob": "x" * 900}


async def test_a_result_with_nul_fails_the_attempt_instead_of_the_worker(pool, pipeline):
    task_id = await new_task(pool, kind="nul_result", max_attempts=1)
    row = (await wait_for_status(pool, [task_id], "FAILED"))[task_id]
    assert "NUL" in row["error"]


@pytest.mark.parametrize("result, refused", [
    ({"a": "x" * 12}, "handler result is 20 bytes, more than MAX_RESULT_BYTES=19"),
    ("x" * 17, None),  # 19 bytes with its quotes
    ({"a": "\x00"}, "NUL"),
    ({"\x00": 1}, "NUL"),
    ({"a": "\\u0000"}, None),  # a backslash and "u0000" as text, not a NUL
    ({"a": "\\\x00"}, "NUL"),
    (object(), "not JSON"),
])
def test_unstorable_result(result, refused):
    reason = unstorable_result(result, 19)
    assert (reason is None) if refused is None else (refused in reason)
