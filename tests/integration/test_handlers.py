"""Kinds declared with @handler, end to end: defaults and payload checks at create, GET /api/v1/kinds,
plain def handlers in threads, process handlers, and an async handler that blocks the event loop."""

import asyncio
import dataclasses
import os
import threading
import time
import uuid

import pytest
from prometheus_client import REGISTRY

from taskservice import dispatcher, worker
from taskservice.api.app import create_app
from tests.support import handlers_for_tests
from tests.support.execution import new_task, statuses_seen, wait_for_status
from tests.support.processes import process_logging_to, wait_for_line

TASKS = "/api/v1/tasks/"
TEST_HANDLERS = ("tests.support.handlers_for_tests",)


@pytest.fixture
async def kinds_client(aiohttp_client, settings):
    """An API that loads the test handler modules, as a deployment naming HANDLER_MODULES would."""
    return await aiohttp_client(create_app(dataclasses.replace(settings, handler_modules=TEST_HANDLERS)))


async def test_a_create_takes_the_kinds_defaults_then_the_global_ones(kinds_client):
    email = {"to": "a@example.com", "subject": "hi"}
    resp = await kinds_client.post(TASKS, json={"name": "e", "kind": "send_email", "payload": email})
    assert resp.status == 201
    task = await resp.json()
    assert (task["priority"], task["max_attempts"], task["timeout_seconds"]) == ("HIGH", 5, 30)
    resp = await kinds_client.post(TASKS, json={"name": "e", "kind": "send_email", "payload": email,
                                                "priority": "LOW", "max_attempts": 1, "timeout_seconds": 7})
    task = await resp.json()
    assert (task["priority"], task["max_attempts"], task["timeout_seconds"]) == ("LOW", 1, 7)
    task = await (await kinds_client.post(TASKS, json={"name": "plain", "kind": "echo"})).json()
    assert (task["priority"], task["max_attempts"], task["timeout_seconds"]) == ("MEDIUM", 3, 300)


async def test_a_payload_the_kinds_schema_refuses_is_a_422_naming_its_fields(kinds_client):
    resp = await kinds_client.post(TASKS, json={"name": "e", "kind": "send_email",
                                                "payload": {"to": "not an address"}})
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert set(body["errors"]) == {"payload.to", "payload.subject"}
    assert "payload.to" in body["detail"]


async def test_without_handler_modules_the_api_accepts_any_kind_as_before(client):
    resp = await client.post(TASKS, json={"name": "e", "kind": "send_email", "payload": {"to": "x"}})
    assert resp.status == 201
    task = await resp.json()
    assert (task["priority"], task["max_attempts"], task["timeout_seconds"]) == ("MEDIUM", 3, 300)


async def test_unknown_kinds_are_refused_when_the_setting_says_so(aiohttp_client, settings):
    strict = await aiohttp_client(create_app(dataclasses.replace(
        settings, handler_modules=TEST_HANDLERS, reject_unknown_kinds=True)))
    resp = await strict.post(TASKS, json={"name": "x", "kind": "no_such_kind"})
    assert resp.status == 422
    assert list((await resp.json())["errors"]) == ["kind"]
    for kind in ("noop", "sleep", "fail", "echo"):  # built-ins, and the modules' kinds
        assert (await strict.post(TASKS, json={"name": "x", "kind": kind})).status == 201
    builtins_only = await aiohttp_client(create_app(dataclasses.replace(settings, reject_unknown_kinds=True)))
    assert (await builtins_only.post(TASKS, json={"name": "x", "kind": "echo"})).status == 422
    assert (await builtins_only.post(TASKS, json={"name": "x"})).status == 201  # DEFAULT_KIND, noop


async def test_kinds_lists_every_known_kind_with_its_defaults_and_payload_schema(kinds_client):
    resp = await kinds_client.get("/api/v1/kinds")
    assert resp.status == 200
    items = {item["kind"]: item for item in (await resp.json())["items"]}
    assert {"noop", "sleep", "fail", "echo", "send_email", "sync_echo", "in_process"} <= set(items)
    email = items["send_email"]
    assert {k: v for k, v in email.items() if k != "payload_schema"} == {
        "kind": "send_email", "executor": "async", "priority": "HIGH", "max_attempts": 5, "timeout_seconds": 30,
        "queue": "emails", "concurrency": 2, "rate": "100/m"}
    schema = email["payload_schema"]
    assert schema["type"] == "object" and set(schema["required"]) == {"to", "subject"}
    assert schema["properties"]["to"] == {"type": "string", "format": "email"}
    assert items["noop"]["payload_schema"] is None
    assert (items["noop"]["priority"], items["noop"]["max_attempts"]) == ("MEDIUM", 3)
    assert (items["sync_echo"]["executor"], items["in_process"]["executor"]) == ("thread", "process")


def abandoned_threads() -> float:
    return REGISTRY.get_sample_value("taskservice_abandoned_threads") or 0.0


async def wait_until(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not {what}"
        await asyncio.sleep(0.05)


async def test_a_plain_def_handler_completes_in_a_thread(pool, running):
    running(dispatcher.main)
    running(worker.main)
    task_id = await new_task(pool, kind="sync_echo", payload={"x": 1})
    row = (await wait_for_status(pool, [task_id], "COMPLETED"))[task_id]
    assert row["result"]["payload"] == {"x": 1} and row["result"]["attempt"] == 1
    assert row["result"]["thread"] == f"handler {task_id}/1"


async def test_a_timed_out_thread_is_abandoned_and_counted_until_it_ends(pool, running):
    running(dispatcher.main)
    running(worker.main)
    gate, before = uuid.uuid4().hex, abandoned_threads()
    task_id = await new_task(pool, kind="sync_wait", payload={"gate": gate}, timeout_seconds=1, max_attempts=1)
    row = (await wait_for_status(pool, [task_id], "FAILED"))[task_id]
    assert row["error"] == "timed out after 1s"
    assert gate in handlers_for_tests.STARTED and gate not in handlers_for_tests.ENDED
    assert abandoned_threads() == before + 1
    handlers_for_tests.GATES.setdefault(gate, threading.Event()).set()
    await wait_until(lambda: abandoned_threads() == before, "back to the count before")
    assert gate in handlers_for_tests.ENDED
    async with pool.acquire() as conn:
        after = await conn.fetchrow("SELECT status, result FROM tasks WHERE id = $1", task_id)
    assert (after["status"], after["result"]) == ("FAILED", None)  # its late result was discarded


async def test_a_running_thread_handler_is_cancelled(aiohttp_client, settings, pool, running):
    client = await aiohttp_client(create_app(settings))
    running(dispatcher.main)
    running(worker.main)
    gate, before = uuid.uuid4().hex, abandoned_threads()
    task_id = await new_task(pool, kind="sync_wait", payload={"gate": gate})
    await wait_for_status(pool, [task_id], "IN_PROGRESS")
    await wait_until(lambda: gate in handlers_for_tests.STARTED, "started")
    resp = await client.delete(f"/api/v1/tasks/{task_id}")
    assert resp.status == 202
    row = (await wait_for_status(pool, [task_id], "CANCELLED"))[task_id]
    assert row["attempts"] == 1 and row["result"] is None
    assert abandoned_threads() == before + 1
    handlers_for_tests.GATES.setdefault(gate, threading.Event()).set()
    await wait_until(lambda: abandoned_threads() == before, "back to the count before")
    assert await statuses_seen(pool, task_id) == ["NEW", "PENDING", "IN_PROGRESS", "CANCELLED"]


async def test_a_process_handler_completes_in_another_process(pool, running, tmp_path):
    running(dispatcher.main)
    running(worker.main)
    pid_file = tmp_path / "pid"
    task_id = await new_task(pool, kind="in_process", payload={"pid_file": str(pid_file)})
    row = (await wait_for_status(pool, [task_id], "COMPLETED", timeout=30))[task_id]
    assert row["result"] == {"pid": int(pid_file.read_text()), "task_id": str(task_id), "attempt": 1}
    assert row["result"]["pid"] != os.getpid()


async def test_a_process_handlers_exception_fails_the_attempt_with_it(pool, running, tmp_path):
    running(dispatcher.main)
    running(worker.main)
    task_id = await new_task(pool, kind="in_process", max_attempts=1,
                             payload={"pid_file": str(tmp_path / "pid"), "error": "bad input"})
    row = (await wait_for_status(pool, [task_id], "FAILED", timeout=30))[task_id]
    assert row["error"] == "ValueError: bad input"


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_timed_out_process_handler_has_its_process_ended(pool, running, tmp_path):
    running(dispatcher.main)
    running(worker.main)
    pid_file = tmp_path / "pid"
    task_id = await new_task(pool, kind="in_process", payload={"pid_file": str(pid_file), "seconds": 120},
                             timeout_seconds=2, max_attempts=1)
    await wait_until(pid_file.exists, "started", timeout=30)
    pid = int(pid_file.read_text())
    assert process_exists(pid)
    row = (await wait_for_status(pool, [task_id], "FAILED", timeout=30))[task_id]
    assert row["error"] == "timed out after 2s"
    await wait_until(lambda: not process_exists(pid), "ended")


async def test_an_async_handler_blocking_the_loop_past_its_lease_runs_once(settings, pool, running, tmp_path):
    # The worker runs in a process of its own, so that only its event loop is blocked: the reaper
    # (in this test's dispatcher) would hand the task to another attempt if its lease ran out.
    lease = 2
    running(dispatcher.main, reap_interval_seconds=0.2)
    env = {"DATABASE_URL": settings.database_url, "AMQP_URL": settings.amqp_url,
           "AMQP_EXCHANGE": settings.amqp_exchange, "AMQP_QUEUE": settings.amqp_queue,
           "HANDLER_MODULES": TEST_HANDLERS[0], "LEASE_SECONDS": str(lease),
           "WORKER_ID": f"blocked-{uuid.uuid4().hex[:6]}"}
    log_path, runs_file = tmp_path / "worker.log", tmp_path / "runs"
    with process_logging_to("worker", env, log_path) as process:
        wait_for_line(process, log_path, "consuming")
        task_id = await new_task(pool, kind="loop_blocker", max_attempts=3,
                                 payload={"seconds": 3 * lease, "runs_file": str(runs_file)})
        row = (await wait_for_status(pool, [task_id], ("COMPLETED", "FAILED"), timeout=60))[task_id]
        assert row["status"] == "COMPLETED", row["error"]
        await asyncio.to_thread(wait_for_line, process, log_path, "event loop was blocked for")
    assert row["attempts"] == 1
    assert await statuses_seen(pool, task_id) == ["NEW", "PENDING", "IN_PROGRESS", "COMPLETED"]
    assert runs_file.read_text().splitlines() == [f"{task_id} 1"]
    log = log_path.read_text()
    blocked = [line for line in log.splitlines() if "event loop was blocked for" in line]
    assert len(blocked) == 1 and "kind 'loop_blocker'" in blocked[0], log
    seconds = float(blocked[0].split("event loop was blocked for ")[1].split("s ")[0])
    assert seconds >= 3 * lease - 1, blocked[0]
