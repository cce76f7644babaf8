"""Metrics and logs against the real PostgreSQL and RabbitMQ: counters move as tasks flow, log lines
carry their request or attempt, nothing secret is written.

Metrics live in prometheus_client's process-wide registry and the test database is shared by the
whole run, so a dispatcher started here may also publish rows other tests left due: counts that
such rows could also move are checked as "at least".
"""

import asyncio
import dataclasses
import io
import json
import logging
import socket
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from taskservice import dispatcher, logs, outbox, tasks, worker
from taskservice.api.app import create_app
from taskservice.settings import SettingsError, load_settings
from tests.support.execution import new_task, start, wait_for_status

TEST_HANDLERS = ("tests.support.handlers_for_tests",)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def transitions(from_status: str, to_status: str) -> float:
    return sample("taskservice_task_transitions_total", from_status=from_status, to_status=to_status)


def parse_samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def log_lines(caplog):
    """What the service would write (JSON lines through its own handler), read back parsed."""
    stream = io.StringIO()
    handler = logs.log_handler("json", stream)
    caplog.set_level(logging.INFO)  # the root logger's level, restored afterwards
    logging.getLogger().addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logging.getLogger().removeHandler(handler)


# -- metrics -------------------------------------------------------------------------------

async def test_metrics_endpoint_serves_the_text_format(client):
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    families = {family.name: family for family in text_string_to_metric_families(await resp.text())}
    for name, kind in [("taskservice_http_requests", "counter"),
                       ("taskservice_http_request_duration_seconds", "histogram"),
                       ("taskservice_tasks_created", "counter"),
                       ("taskservice_task_transitions", "counter"),
                       ("taskservice_task_retries", "counter"),
                       ("taskservice_task_rescues", "counter"),
                       ("taskservice_handler_duration_seconds", "histogram"),
                       ("taskservice_outbox_backlog", "gauge"),
                       ("taskservice_outbox_oldest_due_age_seconds", "gauge"),
                       ("taskservice_dispatch_batch_size", "histogram"),
                       ("taskservice_publish_duration_seconds", "histogram"),
                       ("taskservice_publish_failures", "counter")]:
        assert families[name].type == kind, name


async def test_http_requests_are_counted_by_route_template_not_path(client):
    created_before = sample("taskservice_tasks_created_total", priority="LOW")
    new_before = transitions("none", "NEW")
    posts_before = sample("taskservice_http_requests_total", route="/api/v1/tasks/", method="POST", status="201")
    gets_before = sample("taskservice_http_requests_total", route="/api/v1/tasks/{task_id}", method="GET",
                         status="200")
    latency_before = sample("taskservice_http_request_duration_seconds_count", route="/api/v1/tasks/{task_id}",
                            method="GET")
    missing_before = sample("taskservice_http_requests_total", route="unmatched", method="GET", status="404")

    task = await (await client.post("/api/v1/tasks/", json={"name": "counted", "priority": "LOW"})).json()
    assert (await client.get(f"/api/v1/tasks/{task['id']}")).status == 200
    assert (await client.get("/no/such/path")).status == 404

    text = await (await client.get("/metrics")).text()
    samples = parse_samples(text)

    def now(name, **labels):
        return samples.get((name, frozenset(labels.items())), 0.0)

    assert now("taskservice_tasks_created_total", priority="LOW") == created_before + 1
    assert now("taskservice_task_transitions_total", from_status="none", to_status="NEW") == new_before + 1
    assert now("taskservice_http_requests_total", route="/api/v1/tasks/", method="POST",
               status="201") == posts_before + 1
    assert now("taskservice_http_requests_total", route="/api/v1/tasks/{task_id}", method="GET",
               status="200") == gets_before + 1
    assert now("taskservice_http_request_duration_seconds_count", route="/api/v1/tasks/{task_id}",
               method="GET") == latency_before + 1
    assert now("taskservice_http_requests_total", route="unmatched", method="GET",
               status="404") == missing_before + 1
    assert task["id"] not in text and "/no/such/path" not in text


async def test_unknown_methods_share_one_label(client):
    before = sample("taskservice_http_requests_total", route="unmatched", method="other", status="405")
    assert (await client.request("PROPFIND", "/api/v1/tasks/")).status == 405
    assert sample("taskservice_http_requests_total", route="unmatched", method="other",
                  status="405") == before + 1


async def test_counters_move_as_tasks_flow(aiohttp_client, settings, pool):
    settings = dataclasses.replace(settings, handler_modules=TEST_HANDLERS)
    client = await aiohttp_client(create_app(settings))
    names = {
        "created": ("taskservice_tasks_created_total", {"priority": "HIGH"}),
        "new": ("taskservice_task_transitions_total", {"from_status": "none", "to_status": "NEW"}),
        "dispatched": ("taskservice_task_transitions_total", {"from_status": "NEW", "to_status": "PENDING"}),
        "claimed": ("taskservice_task_transitions_total", {"from_status": "PENDING", "to_status": "IN_PROGRESS"}),
        "completed": ("taskservice_task_transitions_total", {"from_status": "IN_PROGRESS",
                                                             "to_status": "COMPLETED"}),
        "retried": ("taskservice_task_transitions_total", {"from_status": "IN_PROGRESS", "to_status": "PENDING"}),
        "retries": ("taskservice_task_retries_total", {"kind": "fail"}),
        "echo_ok": ("taskservice_handler_duration_seconds_count", {"kind": "echo", "outcome": "completed"}),
        "fail_failed": ("taskservice_handler_duration_seconds_count", {"kind": "fail", "outcome": "failed"}),
        "batches": ("taskservice_dispatch_batch_size_count", {}),
        "batched_rows": ("taskservice_dispatch_batch_size_sum", {}),
        "publishes": ("taskservice_publish_duration_seconds_count", {}),
    }
    before = {key: sample(name, **labels) for key, (name, labels) in names.items()}
    dispatching, working = start(dispatcher.main, settings), start(worker.main, settings)
    try:
        bodies = [{"name": "echo", "kind": "echo", "priority": "HIGH"},
                  {"name": "flaky", "kind": "fail", "payload": {"fail_attempts": 1}, "priority": "HIGH"}]
        ids = [(await (await client.post("/api/v1/tasks/", json=body)).json())["id"] for body in bodies]
        await wait_for_status(pool, ids, "COMPLETED")
    finally:
        await dispatching.shutdown()
        await working.shutdown()
    moved = {key: sample(name, **labels) - before[key] for key, (name, labels) in names.items()}
    assert moved["created"] == 2 and moved["new"] == 2  # only the API counts creations
    assert moved["dispatched"] >= 2
    assert moved["claimed"] >= 3  # echo once, flaky twice
    assert moved["completed"] >= 2
    assert moved["retried"] >= 1 and moved["retries"] >= 1
    assert moved["echo_ok"] >= 1 and moved["fail_failed"] >= 1
    assert moved["batches"] >= 1 and moved["batched_rows"] >= 3  # two creations and one retry
    assert moved["publishes"] >= 1


async def test_timeouts_and_cancels_are_outcomes_and_transitions(aiohttp_client, settings, pool):
    settings = dataclasses.replace(settings, handler_modules=TEST_HANDLERS)
    client = await aiohttp_client(create_app(settings))
    timeouts = sample("taskservice_handler_duration_seconds_count", kind="sleep", outcome="timeout")
    cancels = sample("taskservice_handler_duration_seconds_count", kind="watched_sleep", outcome="cancelled")
    new_cancelled, running_cancelled = transitions("NEW", "CANCELLED"), transitions("IN_PROGRESS", "CANCELLED")

    waiting = await (await client.post("/api/v1/tasks/", json={"name": "never", "run_at": "2999-01-01T00:00:00Z"})
                     ).json()
    assert (await client.delete(f"/api/v1/tasks/{waiting['id']}")).status == 200
    assert transitions("NEW", "CANCELLED") == new_cancelled + 1

    dispatching, working = start(dispatcher.main, settings), start(worker.main, settings)
    try:
        slow = await new_task(pool, kind="sleep", payload={"seconds": 30}, timeout_seconds=1, max_attempts=1)
        watched = await new_task(pool, kind="watched_sleep", payload={"seconds": 30})
        await wait_for_status(pool, [watched], "IN_PROGRESS")
        assert (await client.delete(f"/api/v1/tasks/{watched}")).status == 202
        await wait_for_status(pool, [slow], "FAILED")
        await wait_for_status(pool, [watched], "CANCELLED")
    finally:
        await dispatching.shutdown()
        await working.shutdown()
    assert sample("taskservice_handler_duration_seconds_count", kind="sleep", outcome="timeout") >= timeouts + 1
    assert sample("taskservice_handler_duration_seconds_count", kind="watched_sleep",
                  outcome="cancelled") >= cancels + 1
    assert transitions("IN_PROGRESS", "CANCELLED") >= running_cancelled + 1


async def test_reaper_rescues_are_counted(settings, pool):
    rescues, back_to_pending = sample("taskservice_task_rescues_total", to_status="PENDING"), \
        transitions("IN_PROGRESS", "PENDING")
    task_id = await new_task(pool)
    async with pool.acquire() as conn:
        outbox_id = await conn.fetchval("SELECT max(id) FROM outbox WHERE task_id = $1", task_id)
        # A worker that claims with a short lease and then dies.
        assert await tasks.claim(conn, [(task_id, outbox_id)], "gone-worker", 0.1) != [None]
    dispatching = start(dispatcher.main, settings)
    try:
        await wait_for_status(pool, [task_id], "PENDING")
    finally:
        await dispatching.shutdown()
    assert sample("taskservice_task_rescues_total", to_status="PENDING") >= rescues + 1
    assert transitions("IN_PROGRESS", "PENDING") >= back_to_pending + 1


async def test_outbox_backlog_gauges_count_due_rows_and_the_oldest_age(pool):
    async def measure() -> tuple[float, float]:
        stop = asyncio.Event()
        measuring = asyncio.create_task(dispatcher.measure_backlog_forever(pool, stop))
        await asyncio.sleep(0)  # it has started its first measurement: let it be the only one
        stop.set()
        await measuring
        return sample("taskservice_outbox_backlog"), sample("taskservice_outbox_oldest_due_age_seconds")

    due_before, _ = await measure()
    await new_task(pool, run_at=datetime.now(UTC) + timedelta(hours=1))  # not due: not backlog
    assert (await measure())[0] == due_before
    await new_task(pool, run_at=datetime.now(UTC) - timedelta(minutes=2))  # due for two minutes
    due, oldest_age = await measure()
    assert due == due_before + 1
    assert oldest_age >= 120
    async with pool.acquire() as conn:
        backlog = await outbox.backlog(conn)
    assert backlog["due"] == due and backlog["oldest_due_age_seconds"] >= 120


@pytest.mark.parametrize("main", [worker.main, dispatcher.main], ids=["worker", "dispatcher"])
async def test_standalone_process_serves_metrics_on_its_port(settings, main):
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    process = start(main, dataclasses.replace(settings, host="127.0.0.1", metrics_port=port))
    async with aiohttp.ClientSession() as session:
        try:
            for _ in range(100):
                try:
                    async with session.get(url) as resp:
                        assert resp.status == 200
                        text = await resp.text()
                    async with session.head(url) as resp:  # uptime checkers use HEAD
                        assert resp.status == 200
                        assert await resp.read() == b""
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail(f"nothing served {url}")
        finally:
            await process.shutdown()
        names = {family.name for family in text_string_to_metric_families(text)}
        assert {"taskservice_task_transitions", "taskservice_handler_duration_seconds"} <= names
        with pytest.raises(aiohttp.ClientConnectionError):  # stopped with the process
            await session.get(url)


def test_metrics_port_setting():
    assert load_settings({}).metrics_port == 0
    assert load_settings({"METRICS_PORT": "9100"}).metrics_port == 9100
    with pytest.raises(SettingsError, match="METRICS_PORT"):
        load_settings({"METRICS_PORT": "70000"})


# -- logs ----------------------------------------------------------------------------------

async def chatty(request: web.Request) -> web.Response:
    logging.getLogger("tests.chatty").info("inside the handler")
    return web.json_response({})


async def test_log_lines_carry_the_request_id_the_client_sent(aiohttp_client, settings, log_lines):
    app = create_app(settings)
    app.router.add_get("/test/chatty", chatty)
    client = await aiohttp_client(app)
    resp = await client.get("/test/chatty", headers={"X-Request-ID": "client-id-123"})
    assert resp.status == 200
    assert resp.headers["X-Request-ID"] == "client-id-123"
    lines = log_lines()
    [inside] = [line for line in lines if line["logger"] == "tests.chatty"]
    assert inside["request_id"] == "client-id-123"
    [access] = [line for line in lines if line["logger"] == "taskservice.access"]
    assert access["request_id"] == "client-id-123"
    assert (access["method"], access["path"], access["status"]) == ("GET", "/test/chatty", 200)
    assert access["duration_ms"] >= 0
    for line in lines:  # every line: JSON with the four fields
        assert {"timestamp", "level", "logger", "message"} <= set(line)
        datetime.fromisoformat(line["timestamp"])


@pytest.mark.parametrize("sent", [None, "x" * 129, "two words", "caf\u00e9"])
async def test_a_request_id_is_generated_when_none_usable_is_sent(client, log_lines, sent):
    headers = {} if sent is None else {"X-Request-ID": sent}
    resp = await client.get("/api/v1/tasks/00000000-0000-0000-0000-000000000000", headers=headers)
    assert resp.status == 404
    generated = resp.headers["X-Request-ID"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    [access] = [line for line in log_lines() if line["logger"] == "taskservice.access"]
    assert access["request_id"] == generated and access["status"] == 404


def test_text_format_shows_the_context_too():
    stream = io.StringIO()
    handler = logs.log_handler("text", stream)
    logger = logging.getLogger("tests.text")
    logger.addHandler(handler)
    try:
        with logs.log_context(request_id="abc"):
            logger.warning("one line", extra={"attempt": 2})
    finally:
        logger.removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    assert line.endswith("WARNING tests.text: one line attempt=2 request_id=abc")


async def test_worker_log_lines_carry_task_id_and_attempt(settings, pool, log_lines):
    settings = dataclasses.replace(settings, handler_modules=TEST_HANDLERS)
    dispatching, working = start(dispatcher.main, settings), start(worker.main, settings)
    try:
        task_id = await new_task(pool, kind="chatty")
        await wait_for_status(pool, [task_id], "COMPLETED")
    finally:
        await dispatching.shutdown()
        await working.shutdown()
    lines = log_lines()
    [from_handler] = [line for line in lines if line["logger"] == "tests.support.handlers_for_tests"
                      and line.get("task_id") == str(task_id)]
    assert from_handler["attempt"] == 1
    outcome = [line for line in lines if line["logger"] == "taskservice.worker"
               and line.get("task_id") == str(task_id)]
    assert outcome and all(line["attempt"] == 1 for line in outcome)


async def test_no_credentials_or_bodies_in_the_logs(client, log_lines):
    secrets = ("Bearer-s3cret-token", "api-k3y-s3cret", "body-s3cret")
    resp = await client.post("/api/v1/tasks/", json={"name": secrets[2], "payload": {"p": secrets[2]}},
                             headers={"Authorization": f"Bearer {secrets[0]}", "X-API-Key": secrets[1]})
    assert resp.status in (201, 401)
    await client.get("/api/v1/tasks/", params={"search": "x"},
                     headers={"Authorization": f"Bearer {secrets[0]}", "X-API-Key": secrets[1]})
    written = json.dumps(log_lines())
    assert "taskservice.access" in written
    for secret in secrets:
        assert secret not in written


async def test_unparseable_requests_are_one_info_line_without_traceback(client, log_lines):
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n")
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert b" 400 " in status_line
    for _ in range(20):  # aiohttp logs once the answer is out
        bad = [line for line in log_lines() if line["logger"] == "aiohttp.server"]
        if bad:
            break
        await asyncio.sleep(0.05)
    [line] = bad
    assert line["level"] == "info"
    assert "exception" not in line
    assert "a\\x00b" not in line["message"] and "X-Bad" not in line["message"]
