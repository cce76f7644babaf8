"""A real worker logs a failing handler's error and traceback: WARNING while it will be retried,
ERROR when the attempts are exhausted (as JSON lines, through the service's own log handler)."""

import io
import json
import logging

import pytest

from taskservice import dispatcher, logs, worker
from tests.support.execution import new_task, wait_for_status


@pytest.fixture
def log_lines(caplog):
    stream = io.StringIO()
    handler = logs.log_handler("json", stream)
    caplog.set_level(logging.INFO)
    logging.getLogger().addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logging.getLogger().removeHandler(handler)


async def test_retries_warn_and_the_final_failure_is_an_error_with_the_traceback(running, pool, log_lines):
    running(dispatcher.main)
    running(worker.main)
    task_id = await new_task(pool, kind="fail", payload={"message": "the upstream said no"}, max_attempts=2)
    await wait_for_status(pool, [task_id], "FAILED")
    outcomes = [line for line in log_lines()
                if line["logger"] == "taskservice.worker" and line.get("task_id") == str(task_id)
                and "outcome" in line]
    assert [(line["level"], line["outcome"], line["attempt"]) for line in outcomes] == [
        ("warning", "retry", 1), ("error", "failed", 2)]
    retry, final = outcomes
    assert retry["message"].startswith(f"task {task_id} attempt 1 of 2 failed: RuntimeError: the upstream said no; "
                                       "it will be retried in ")
    assert retry["retry_in_seconds"] > 0
    assert final["message"] == (f"task {task_id} attempt 2 of 2 failed: RuntimeError: the upstream said no; "
                                "no attempts left, the task is FAILED")
    for line in outcomes:
        assert line["exception"].startswith("Traceback")
        assert "taskservice/handlers.py" in line["exception"] and "in fail" in line["exception"]


async def test_a_timeout_is_logged_as_one(running, pool, log_lines):
    running(dispatcher.main)
    running(worker.main)
    task_id = await new_task(pool, kind="sleep", payload={"seconds": 30}, timeout_seconds=1, max_attempts=1)
    await wait_for_status(pool, [task_id], "FAILED")
    [final] = [line for line in log_lines() if line.get("task_id") == str(task_id) and "outcome" in line]
    assert final["level"] == "error"
    assert final["message"] == (f"task {task_id} attempt 1 of 1 timed out after 1s; "
                                "no attempts left, the task is FAILED")
    assert "exception" not in final
