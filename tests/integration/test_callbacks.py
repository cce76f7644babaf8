"""Completion webhooks against a real receiver on 127.0.0.1: every finished task is delivered, signed,
retried until the receiver answers, not lost when a dispatcher is killed, never sent to a refused
address, never redirected; GET /api/v1/tasks/{id}/callbacks shows the attempts."""

import asyncio
import dataclasses
import hashlib
import hmac
import os
import signal
import time
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from taskservice import dispatcher, maintenance, tasks, worker
from taskservice.api.app import create_app
from tests.support.processes import free_port, process_logging_to

SECRETS = ("current-secret", "previous-secret")
FAST_RETRIES = {"callback_allow_private": True, "callback_secrets": SECRETS, "callback_poll_seconds": 0.1,
                "callback_retry_base_seconds": 0.05, "callback_retry_max_seconds": 0.3,
                "callback_timeout_seconds": 2.0}


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1 that records each request and answers as `answer` says."""
    port: int = 0
    received: list[dict] = field(default_factory=list)
    answer: object = 200  # a status, or a callable(request number) -> status | web.Response (may be async)
    runner: web.AppRunner | None = None

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append({"path": request.path, "headers": dict(request.headers), "body": await request.read()})
        answer = self.answer(len(self.received)) if callable(self.answer) else self.answer
        if asyncio.iscoroutine(answer):
            answer = await answer
        return answer if isinstance(answer, web.StreamResponse) else web.Response(status=answer)

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.runner.cleanup()

    def task_ids(self) -> list[str]:
        return [orjson.loads(r["body"])["id"] for r in self.received if r["path"] == "/hook"]


@pytest.fixture
async def receiver():
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture(autouse=True)
async def no_leftover_deliveries(pool):
    """Deliveries earlier tests left pending (to receivers now gone) are set aside: the dispatchers
    here see only this test's."""
    async with pool.acquire() as conn:
        await conn.execute("UPDATE callback_deliveries SET status = 'failed', finished_at = now() "
                           "WHERE status = 'pending'")


@pytest.fixture
async def private_client(aiohttp_client, settings):
    return await aiohttp_client(create_app(dataclasses.replace(settings, callback_allow_private=True)))


async def cancelled_task(pool, callback_url: str, name: str = "hooked"):
    """A task with `callback_url`, cancelled at once (NEW → CANCELLED): its delivery row is written."""
    async with pool.acquire() as conn:
        row = await tasks.create(conn, name=name, description=None, priority="MEDIUM", kind="noop", payload={},
                                 max_attempts=1, timeout_seconds=60, run_at=None, callback_url=callback_url)
        await tasks.cancel(conn, row["id"])
    return row["id"]


async def deliveries(pool, task_ids) -> list:
    async with pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM callback_deliveries WHERE task_id = ANY($1) ORDER BY created_at",
                                list(task_ids))


async def wait_settled(pool, task_ids, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while True:
        rows = await deliveries(pool, task_ids)
        if len({r["task_id"] for r in rows}) == len(set(task_ids)) and all(r["status"] != "pending" for r in rows):
            return rows
        assert time.monotonic() < deadline, [(r["task_id"], r["status"], r["last_error"]) for r in rows]
        await asyncio.sleep(0.1)


def verify(secret: str, headers: dict, body: bytes) -> bool:
    """What a receiver does (the README's example)."""
    parts = dict(item.split("=", 1) for item in headers["X-Taskservice-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


def delivered_count() -> float:
    return REGISTRY.get_sample_value("taskservice_callback_deliveries_total", {"outcome": "delivered"}) or 0


async def test_every_finished_task_is_delivered_signed(private_client, pool, running, receiver):
    before = delivered_count()
    created = {}
    for kind, max_attempts in (("noop", 1), ("fail", 1), ("sleep", 1)):
        response = await private_client.post("/api/v1/tasks", json={
            "name": kind, "kind": kind, "max_attempts": max_attempts, "payload": {"seconds": 60},
            "callback_url": receiver.url()})
        assert response.status == 201, await response.text()
        body = await response.json()
        assert body["callback_url"] == receiver.url()
        created[kind] = body["id"]
    running(dispatcher.main, **FAST_RETRIES)
    running(worker.main)
    deadline = time.monotonic() + 30
    while (await (await private_client.get(f"/api/v1/tasks/{created['sleep']}")).json())["status"] != "IN_PROGRESS":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert (await private_client.delete(f"/api/v1/tasks/{created['sleep']}")).status == 202

    rows = await wait_settled(pool, created.values())
    assert {r["status"] for r in rows} == {"delivered"}
    assert {str(r["task_id"]): r["task_status"] for r in rows} == {
        created["noop"]: "COMPLETED", created["fail"]: "FAILED", created["sleep"]: "CANCELLED"}
    assert sorted(receiver.task_ids()) == sorted(created.values())
    for request in receiver.received:
        headers, body = request["headers"], request["body"]
        assert verify(SECRETS[0], headers, body) and not verify(SECRETS[1], headers, body)
        assert headers["Content-Type"] == "application/json"
        task = orjson.loads(body)
        assert headers["X-Taskservice-Delivery"] in {str(r["id"]) for r in rows if str(r["task_id"]) == task["id"]}
        assert task == await (await private_client.get(f"/api/v1/tasks/{task['id']}")).json()
    assert delivered_count() - before >= 3

    response = await private_client.get(f"/api/v1/tasks/{created['fail']}/callbacks")
    assert response.status == 200
    listing = await response.json()
    assert [d["status"] for d in listing["deliveries"]] == ["delivered"]
    assert listing["deliveries"][0]["task_status"] == "FAILED"
    [attempt] = listing["items"]
    assert attempt["status_code"] == 200 and attempt["error"] is None and attempt["outcome"] == "delivered"
    assert attempt["attempt"] == 1 and attempt["duration_seconds"] >= 0 and attempt["at"]


async def test_callbacks_of_an_unknown_task_is_404_and_of_a_task_without_one_is_empty(private_client, pool):
    response = await private_client.get("/api/v1/tasks/00000000-0000-0000-0000-000000000000/callbacks")
    assert response.status == 404
    created = await (await private_client.post("/api/v1/tasks", json={"name": "plain"})).json()
    assert created["callback_url"] is None
    response = await private_client.get(f"/api/v1/tasks/{created['id']}/callbacks")
    assert await response.json() == {"task_id": created["id"], "deliveries": [], "items": []}


async def test_a_failing_receiver_gets_everything_once_it_answers(pool, running, receiver):
    # 500 with a large body for the first five requests, then 200.
    receiver.answer = lambda n: web.Response(status=500, body=b"x" * 100_000) if n <= 5 else 200
    task_ids = [await cancelled_task(pool, receiver.url(), f"flaky-{i}") for i in range(3)]
    running(dispatcher.main, **FAST_RETRIES)
    rows = await wait_settled(pool, task_ids)
    assert {r["status"] for r in rows} == {"delivered"}
    assert set(receiver.task_ids()) == {str(t) for t in task_ids}
    async with pool.acquire() as conn:
        attempts = await conn.fetch("SELECT * FROM callback_attempts WHERE delivery_id = ANY($1) ORDER BY id",
                                    [r["id"] for r in rows])
    failed = [a for a in attempts if a["status_code"] == 500]
    assert len(failed) == 5 and all(a["outcome"] == "retry" for a in failed)
    assert all(a["error"].startswith("HTTP 500: x") and len(a["error"]) < 1100 for a in failed)
    assert sum(a["outcome"] == "delivered" for a in attempts) == 3


async def test_a_receiver_that_is_down_gets_everything_once_it_comes_up(pool, running):
    port = free_port()
    late = Receiver()
    task_ids = [await cancelled_task(pool, f"http://127.0.0.1:{port}/hook", f"down-{i}") for i in range(5)]
    running(dispatcher.main, **FAST_RETRIES)
    deadline = time.monotonic() + 30
    while True:
        async with pool.acquire() as conn:
            tried = await conn.fetchval("SELECT count(*) FROM callback_attempts a JOIN callback_deliveries d "
                                        "ON d.id = a.delivery_id WHERE d.task_id = ANY($1)", task_ids)
        if tried >= 10:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    await late.start(port)
    try:
        rows = await wait_settled(pool, task_ids)
    finally:
        await late.stop()
    assert {r["status"] for r in rows} == {"delivered"}
    assert sorted(late.task_ids()) == sorted(str(t) for t in task_ids)
    assert all(r["attempts"] >= 2 for r in rows)


async def test_out_of_retry_time_the_delivery_fails(pool, running, receiver):
    before = REGISTRY.get_sample_value("taskservice_callback_deliveries_total", {"outcome": "failed"}) or 0
    receiver.answer = 503
    task_id = await cancelled_task(pool, receiver.url())
    running(dispatcher.main, **{**FAST_RETRIES, "callback_retry_hours": 1 / 3600})  # one second
    [row] = await wait_settled(pool, [task_id])
    assert row["status"] == "failed" and row["last_status_code"] == 503 and row["finished_at"] is not None
    assert row["attempts"] >= 2 and len(receiver.received) == row["attempts"]
    after = REGISTRY.get_sample_value("taskservice_callback_deliveries_total", {"outcome": "failed"})
    assert after == before + 1


async def test_redirects_are_not_followed(pool, running, receiver):
    receiver.answer = lambda n: web.Response(status=302, headers={"Location": receiver.url("/elsewhere")})
    task_id = await cancelled_task(pool, receiver.url())
    running(dispatcher.main, **{**FAST_RETRIES, "callback_retry_hours": 0})
    [row] = await wait_settled(pool, [task_id])
    assert row["status"] == "failed" and row["last_status_code"] == 302
    assert "redirect" in row["last_error"]
    assert [r["path"] for r in receiver.received] == ["/hook"]


async def test_private_addresses_are_refused_at_delivery_time(pool, running, receiver):
    # Allowed when created (as if the name resolved elsewhere then), refused by a dispatcher that
    # does not allow private addresses: `localhost` goes through the resolver, 127.0.0.1 does not.
    task_ids = [await cancelled_task(pool, receiver.url(host=host)) for host in ("localhost", "127.0.0.1")]
    running(dispatcher.main, **{**FAST_RETRIES, "callback_allow_private": False, "callback_retry_hours": 0})
    rows = await wait_settled(pool, task_ids)
    assert {r["status"] for r in rows} == {"failed"}
    assert all(r["last_error"].startswith("refused:") and r["last_status_code"] is None for r in rows), \
        [r["last_error"] for r in rows]
    assert receiver.received == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook", "http://localhost:8000/hook", "http://100.64.0.1/", "http://[fd00:ec2::254]/",
    "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://224.0.0.1/", "ftp://example.com/file",
    "file:///etc/passwd", "http:///no-host", "not a url", "http://no-such-host.invalid/hook",
    "http://example.com:99999/",
])
async def test_refused_callback_urls_at_create(client, url):
    response = await client.post("/api/v1/tasks", json={"name": "t", "callback_url": url})
    assert response.status == 422, await response.text()
    assert list((await response.json())["errors"]) == ["callback_url"]


async def test_a_public_address_is_accepted_and_private_ones_with_the_setting(client, private_client, receiver):
    response = await client.post("/api/v1/tasks", json={"name": "t", "callback_url": "https://93.184.215.14/h"})
    assert response.status == 201
    assert (await response.json())["callback_url"] == "https://93.184.215.14/h"
    for host in ("127.0.0.1", "localhost"):
        response = await private_client.post("/api/v1/tasks",
                                             json={"name": "t", "callback_url": receiver.url(host=host)})
        assert response.status == 201, await response.text()


async def test_a_killed_dispatcher_loses_no_delivery(pool, running, receiver, settings, tmp_path):
    arrived, released = asyncio.Event(), asyncio.Event()

    async def hang_first(n):
        if n == 1:
            arrived.set()
            await released.wait()  # the killed dispatcher's request: it never gets an answer
        return 200

    receiver.answer = hang_first
    timeout = 2.0
    env = {"DATABASE_URL": settings.database_url, "AMQP_URL": settings.amqp_url,
           "AMQP_EXCHANGE": settings.amqp_exchange, "AMQP_QUEUE": settings.amqp_queue,
           "CALLBACK_ALLOW_PRIVATE": "true", "CALLBACK_POLL_SECONDS": "0.1",
           "CALLBACK_TIMEOUT_SECONDS": str(timeout), "CALLBACK_SECRET": SECRETS[0]}
    task_id = await cancelled_task(pool, receiver.url())
    with process_logging_to("dispatcher", env, tmp_path / "dispatcher.log") as victim:
        await asyncio.wait_for(arrived.wait(), 30)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
    released.set()
    running(dispatcher.main, **{**FAST_RETRIES, "callback_timeout_seconds": timeout})
    [row] = await wait_settled(pool, [task_id], timeout=60)
    assert row["status"] == "delivered" and row["attempts"] == 2
    assert len(receiver.received) == 2
    # The same delivery both times: the receiver can tell the second is a repeat.
    assert {r["headers"]["X-Taskservice-Delivery"] for r in receiver.received} == {str(row["id"])}
    assert all(verify(SECRETS[0], r["headers"], r["body"]) for r in receiver.received)


async def test_retention_takes_a_tasks_deliveries_with_it(pool, settings, receiver):
    task_id = await cancelled_task(pool, receiver.url())
    async with pool.acquire() as conn:
        [delivery] = await deliveries(pool, [task_id])
        await conn.execute("INSERT INTO callback_attempts (delivery_id, attempt, started_at, duration_seconds, "
                           "status_code, outcome) VALUES ($1, 1, now(), 0.01, 200, 'delivered')", delivery["id"])
        await conn.execute("UPDATE tasks SET finished_at = now() - interval '40 days', "
                           "created_at = now() - interval '41 days' WHERE id = $1", task_id)
    await maintenance.maintain_once(pool, dataclasses.replace(settings, retention_days=30))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tasks WHERE id = $1", task_id) == 0
        assert await conn.fetchval("SELECT count(*) FROM callback_deliveries WHERE id = $1", delivery["id"]) == 0
        assert await conn.fetchval("SELECT count(*) FROM callback_attempts WHERE delivery_id = $1",
                                   delivery["id"]) == 0
