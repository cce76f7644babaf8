"""The worker's log line for each way an attempt ends: retry, final failure, timeout, cancel, hand back."""

import asyncio
import logging
import uuid

import pytest

from taskservice import worker

TASK = {"id": uuid.UUID("00000000-0000-0000-0000-0000000000aa"), "attempts": 2, "max_attempts": 3}


async def ended_attempt(body, stop_reason: str | None = None) -> worker.Attempt:
    """An Attempt whose handler task ran `body` to its end (or was cancelled, with `stop_reason`)."""
    attempt = worker.Attempt(TASK, asyncio.create_task(body()))
    if stop_reason is not None:
        await asyncio.sleep(0)  # let it start, so the cancel reaches it inside the body
        worker.stop_attempt({TASK["id"]: attempt}, TASK["id"], stop_reason)
    await asyncio.wait([attempt.handler_task])
    return attempt


async def raises() -> None:
    raise RuntimeError("the upstream said no")


async def times_out() -> None:
    raise worker.AttemptTimedOut("timed out after 5s")


async def sleeps() -> None:
    await asyncio.sleep(30)


async def returns_bytes() -> bytes:
    return b"not JSON"


def logged(caplog, attempt: worker.Attempt, status: str, retry_in: float = 1.5) -> logging.LogRecord:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="taskservice.worker"):
        worker.log_outcome(attempt, status, retry_in, max_result_bytes=1024)
    [record] = caplog.records
    assert record.task_id == str(TASK["id"]) and record.attempt == 2
    return record


async def test_a_failure_with_attempts_left_is_a_warning_that_says_when_it_is_retried(caplog):
    record = logged(caplog, await ended_attempt(raises), "PENDING", retry_in=1.5)
    assert record.levelno == logging.WARNING
    assert record.outcome == "retry" and record.retry_in_seconds == 1.5
    assert record.getMessage() == (f"task {TASK['id']} attempt 2 of 3 failed: RuntimeError: the upstream said no; "
                                   "it will be retried in 1.5s")
    assert record.exc_info[0] is RuntimeError  # the handler's traceback
    assert "in raises" in caplog.text and 'raise RuntimeError("the upstream said no")' in caplog.text


async def test_the_final_failure_is_an_error_with_the_traceback(caplog):
    record = logged(caplog, await ended_attempt(raises), "FAILED")
    assert record.levelno == logging.ERROR and record.outcome == "failed"
    assert record.getMessage() == (f"task {TASK['id']} attempt 2 of 3 failed: RuntimeError: the upstream said no; "
                                   "no attempts left, the task is FAILED")
    assert record.exc_info[0] is RuntimeError


@pytest.mark.parametrize(("status", "level", "ending"), [
    ("PENDING", logging.WARNING, "it will be retried in 250ms"),
    ("FAILED", logging.ERROR, "no attempts left, the task is FAILED"),
])
async def test_a_timeout_says_so_without_a_traceback(caplog, status, level, ending):
    record = logged(caplog, await ended_attempt(times_out), status, retry_in=0.25)
    assert record.levelno == level
    assert record.getMessage() == f"task {TASK['id']} attempt 2 of 3 timed out after 5s; {ending}"
    assert record.exc_info is None


async def test_a_refused_result_is_a_failure_naming_the_reason(caplog):
    record = logged(caplog, await ended_attempt(returns_bytes), "PENDING")
    assert record.levelno == logging.WARNING
    assert "failed: handler result is not JSON" in record.getMessage()
    assert record.exc_info is None


async def test_a_cancel_on_request_is_not_a_failure(caplog):
    record = logged(caplog, await ended_attempt(sleeps, stop_reason="cancel"), "CANCELLED")
    assert record.levelno == logging.INFO and record.outcome == "cancelled"
    assert record.getMessage() == f"task {TASK['id']} attempt 2 of 3: cancelled on request; the task is CANCELLED"


async def test_a_hand_back_is_not_a_retry(caplog):
    record = logged(caplog, await ended_attempt(sleeps, stop_reason="shutdown"), "PENDING")
    assert record.levelno == logging.INFO and record.outcome == "handed_back"
    assert "handed back as the worker stops (the attempt does not count); the task is PENDING" \
        in record.getMessage()
    assert "retried" not in record.getMessage()


async def test_completion_is_one_info_line(caplog):
    async def succeeds() -> dict:
        return {"ok": True}

    record = logged(caplog, await ended_attempt(succeeds), "COMPLETED")
    assert record.levelno == logging.INFO and record.outcome == "completed"
    assert record.getMessage() == f"task {TASK['id']} attempt 2 of 3: COMPLETED"
