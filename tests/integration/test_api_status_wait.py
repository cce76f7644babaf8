"""GET /api/v1/tasks/{id}/status?since=&wait=: answers within 200 ms of a change, or at the timeout,
served from the API's event feed: a waiting request writes nothing."""

import asyncio
import dataclasses
import uuid
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from taskservice import dispatcher, events, worker
from taskservice.api.app import create_app
from taskservice.api.event_feed import EVENT_FEED
from taskservice.api.status_waits import release_waiters
from tests.support.execution import TcpProxy, new_task, start, wait_for_status

TASKS = "/api/v1/tasks/"
PROMPT = 0.2  # the most a waiting request may lag behind the change it waits for


async def create(client, **body) -> dict:
    resp = await client.post(TASKS, json={"name": "waited", **body})
    assert resp.status == 201
    return await resp.json()


async def get_status(client, task_id, **params):
    resp = await client.get(f"/api/v1/tasks/{task_id}/status", params=params)
    return resp.status, await resp.json()


async def until_waiting(client, task_id, count: int = 1) -> None:
    """Until `count` requests wait for this task (registered, so the test can change it)."""
    waiters = client.app[EVENT_FEED].waiters
    for _ in range(200):
        if len(waiters.get(task_id, ())) >= count:
            await asyncio.sleep(0.05)  # past its read, into the wait itself
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request never started waiting")


async def test_without_since_or_wait_answers_at_once(client):
    task = await create(client)
    loop = asyncio.get_running_loop()
    for params in ({}, {"wait": "5"}, {"since": "NEW"}, {"since": "NEW", "wait": "0"}):
        started = loop.time()
        assert await get_status(client, task["id"], **params) == (200, {"task_id": task["id"], "status": "NEW"})
        assert loop.time() - started < 1, params


async def test_a_status_other_than_since_answers_at_once(client):
    task = await create(client)
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await get_status(client, task["id"], since="PENDING", wait="30")
    assert (status, body["status"]) == (200, "NEW")
    assert loop.time() - started < 1


async def test_waits_until_the_status_changes_and_answers_within_200ms(client):
    task = await create(client)
    waiting = asyncio.create_task(get_status(client, task["id"], since="NEW", wait="20"))
    await until_waiting(client, task["id"])
    assert not waiting.done()
    loop = asyncio.get_running_loop()
    changed_at = loop.time()  # before the cancel: its own time counts against the 200 ms
    assert (await client.delete(f"/api/v1/tasks/{task['id']}")).status == 200
    status, body = await waiting
    lag = loop.time() - changed_at
    assert (status, body) == (200, {"task_id": task["id"], "status": "CANCELLED"})
    assert lag < PROMPT, f"answered {lag * 1000:.0f} ms after the change"


async def test_a_change_made_by_another_connection_wakes_the_waiter(client, pool):
    task = await create(client)
    waiting = asyncio.create_task(get_status(client, task["id"], since="NEW", wait="20"))
    await until_waiting(client, task["id"])
    loop = asyncio.get_running_loop()
    changed_at = loop.time()
    async with pool.acquire() as conn:  # as the dispatcher would: commit, then announce
        await conn.execute("UPDATE tasks SET status = 'PENDING' WHERE id = $1", uuid.UUID(task["id"]))
        await events.announce(conn)
    status, body = await waiting
    assert (status, body["status"]) == (200, "PENDING")
    assert loop.time() - changed_at < PROMPT


async def test_an_announcement_naming_the_task_completed_answers_without_a_read(client, pool):
    """A worker's announcement names the tasks it completed: their waits are answered from it.
    Here the database never made the task COMPLETED, so only the announcement can have said so."""
    task = await create(client)
    waiting = asyncio.create_task(get_status(client, task["id"], since="NEW", wait="20"))
    await until_waiting(client, task["id"])
    async with pool.acquire() as conn:
        await events.announce(conn, [uuid.uuid4(), uuid.UUID(task["id"])])
    status, body = await asyncio.wait_for(waiting, 5)
    assert (status, body) == (200, {"task_id": task["id"], "status": "COMPLETED"})


async def test_an_announcement_with_malformed_task_ids_is_only_a_read(client, pool):
    task = await create(client)
    waiting = asyncio.create_task(get_status(client, task["id"], since="NEW", wait="20"))
    await until_waiting(client, task["id"])
    async with pool.acquire() as conn:
        await conn.execute("UPDATE tasks SET status = 'PENDING' WHERE id = $1", uuid.UUID(task["id"]))
        await conn.execute("SELECT pg_notify('task_events', ' not-a-task-id')")
    status, body = await asyncio.wait_for(waiting, 5)
    assert (status, body["status"]) == (200, "PENDING")


async def test_times_out_with_the_unchanged_status(client):
    task = await create(client)
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await get_status(client, task["id"], since="NEW", wait="0.5")
    elapsed = loop.time() - started
    assert (status, body["status"]) == (200, "NEW")
    assert 0.5 <= elapsed < 0.5 + PROMPT, elapsed


async def test_a_change_that_keeps_the_status_does_not_end_the_wait(client, pool):
    task = await create(client)
    waiting = asyncio.create_task(get_status(client, task["id"], since="NEW", wait="0.6"))
    await until_waiting(client, task["id"])
    async with pool.acquire() as conn:
        await conn.execute("UPDATE tasks SET description = 'touched' WHERE id = $1", uuid.UUID(task["id"]))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    assert (await waiting)[1]["status"] == "NEW"


async def test_many_waiters_on_one_task_all_wake(client):
    task = await create(client)
    waiting = [asyncio.create_task(get_status(client, task["id"], since="NEW", wait="20")) for _ in range(10)]
    await until_waiting(client, task["id"], count=10)
    await client.delete(f"/api/v1/tasks/{task['id']}")
    results = await asyncio.wait_for(asyncio.gather(*waiting), 2)
    assert all(body["status"] == "CANCELLED" for _, body in results)
    assert client.app[EVENT_FEED].waiters == {}  # nothing left registered


async def test_waiting_requests_hold_no_database_connection(aiohttp_client, settings):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, db_pool_max=2)))
    task = await create(client)
    waiting = [asyncio.create_task(get_status(client, task["id"], since="NEW", wait="20")) for _ in range(5)]
    await until_waiting(client, task["id"], count=5)
    resp = await asyncio.wait_for(client.get(f"/api/v1/tasks/{task['id']}"), 2)
    assert resp.status == 200
    await client.delete(f"/api/v1/tasks/{task['id']}")
    await asyncio.wait_for(asyncio.gather(*waiting), 2)


async def test_shutdown_answers_waiting_requests_at_once(client):
    task = await create(client)
    waiting = asyncio.create_task(get_status(client, task["id"], since="NEW", wait="30"))
    await until_waiting(client, task["id"])
    await release_waiters(client.app)
    assert await asyncio.wait_for(waiting, 1) == (200, {"task_id": task["id"], "status": "NEW"})


async def test_unknown_task_is_404_without_waiting(client):
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await get_status(client, uuid.uuid4(), since="NEW", wait="10")
    assert (status, body["detail"]) == (404, "Task not found")
    assert loop.time() - started < 1


@pytest.mark.parametrize("params, field", [
    ({"wait": "61"}, "wait"),
    ({"wait": "-1"}, "wait"),
    ({"wait": "soon"}, "wait"),
    ({"wait": "nan"}, "wait"),
    ({"wait": "inf"}, "wait"),
    ({"since": "DONE", "wait": "1"}, "since"),
    ({"since": "new"}, "since"),
])
async def test_bad_parameters_are_422(client, params, field):
    task = await create(client)
    status, body = await get_status(client, task["id"], **params)
    assert status == 422 and field in body["errors"]


async def test_a_waiting_request_writes_nothing(client, pool, database_url):
    """No new row version, so no row lock and no WAL; and no NOTIFY of its own."""
    heard = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener("task_status", lambda *args: heard.put_nowait(args[-1]))
        task = await create(client)
        version = "SELECT xmin::text, ctid::text FROM tasks WHERE id = $1"
        async with pool.acquire() as conn:
            before = await conn.fetchrow(version, uuid.UUID(task["id"]))
        assert (await get_status(client, task["id"], since="NEW", wait="0.3"))[1]["status"] == "NEW"
        async with pool.acquire() as conn:
            assert await conn.fetchrow(version, uuid.UUID(task["id"])) == before
            await conn.execute("UPDATE tasks SET status = 'PENDING' WHERE id = $1", uuid.UUID(task["id"]))
        await listener.fetchval("SELECT 1")  # a round trip: a NOTIFY sent would have arrived by now
        assert heard.empty()
    finally:
        await listener.close()


async def test_a_change_in_flight_during_the_read_still_ends_the_wait(client, pool):
    """The change's event id was taken before the request's read but committed after it: the
    read does not see it, and the feed's copy still counts as newer."""
    task = await create(client)
    async with pool.acquire() as holder:
        async with holder.transaction():
            await holder.execute("UPDATE tasks SET status = 'PENDING' WHERE id = $1", uuid.UUID(task["id"]))
            waiting = asyncio.create_task(get_status(client, task["id"], since="NEW", wait="20"))
            await until_waiting(client, task["id"])  # registered, its read saw NEW
        await events.announce(holder)
    assert await asyncio.wait_for(waiting, 5) == (200, {"task_id": task["id"], "status": "PENDING"})


async def test_500_waits_on_different_tasks_are_all_answered(aiohttp_client, settings, running):
    """Each request follows its own task to COMPLETED one wait at a time, as a client does; all
    500 are waiting before the dispatcher and the worker start."""
    client = await aiohttp_client(create_app(settings))
    created = [await create(client, kind="noop") for _ in range(500)]
    # One connection per waiting request (the test client's own session allows 100).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def follow(task_id: str) -> list[str]:
            seen = ["NEW"]
            while seen[-1] != "COMPLETED":
                async with session.get(client.make_url(f"/api/v1/tasks/{task_id}/status"),
                                       params={"since": seen[-1], "wait": "30"}) as resp:
                    body = await resp.json()
                assert resp.status == 200 and body["status"] != seen[-1], (task_id, seen, body)
                seen.append(body["status"])
            return seen

        following = [asyncio.create_task(follow(task["id"])) for task in created]
        try:
            waiters = client.app[EVENT_FEED].waiters
            for _ in range(1000):
                if len(waiters) == 500:
                    break
                await asyncio.sleep(0.02)
            assert len(waiters) == 500
            running(dispatcher.main)
            running(worker.main)
            done = await asyncio.wait_for(asyncio.gather(*following), 60)
        finally:
            for task in following:
                task.cancel()
    assert all(seen[-1] == "COMPLETED" for seen in done)
    assert waiters == {}


async def test_follow_a_task_to_completion_one_wait_at_a_time(aiohttp_client, settings):
    settings = dataclasses.replace(settings, dispatcher_embedded=True,
                                   handler_modules=("tests.support.handlers_for_tests",))
    client = await aiohttp_client(create_app(settings))
    running = start(worker.main, settings)
    try:
        task = await create(client, kind="sleep", payload={"seconds": 0.3})
        seen = ["NEW"]
        while seen[-1] not in ("COMPLETED", "FAILED", "CANCELLED"):
            status, body = await get_status(client, task["id"], since=seen[-1], wait="10")
            assert status == 200 and body["status"] != seen[-1], seen
            seen.append(body["status"])
        assert seen[-1] == "COMPLETED"
        assert set(seen) <= {"NEW", "PENDING", "IN_PROGRESS", "COMPLETED"}
    finally:
        await running.shutdown()


async def test_a_row_locked_all_along_ends_the_wait_on_time_not_in_an_error(client, pool):
    task = await create(client)
    loop = asyncio.get_running_loop()
    async with pool.acquire() as holder, holder.transaction():
        # as a dispatch transaction waiting for an unresponsive broker would hold it
        await holder.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", uuid.UUID(task["id"]))
        started = loop.time()
        status, body = await get_status(client, task["id"], since="NEW", wait="0.5")
        elapsed = loop.time() - started
    assert (status, body["status"]) == (200, "NEW")
    assert 0.5 <= elapsed < 0.5 + PROMPT, elapsed


async def test_a_change_missed_while_listen_reconnects_still_ends_the_wait(aiohttp_client, settings, pool):
    # The app reaches PostgreSQL through a proxy the test can cut; the test's own pool does not.
    target = urlsplit(settings.database_url)
    proxy = TcpProxy(target.hostname, target.port or 5432)
    await proxy.start()
    url = urlunsplit(target._replace(netloc=f"{target.username or 'postgres'}@127.0.0.1:{proxy.port}"))
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url)))
    try:
        # A first wait ended by a change: the feed is live, and idle once it is answered.
        first = await create(client)
        waiting = asyncio.create_task(get_status(client, first["id"], since="NEW", wait="30"))
        await until_waiting(client, first["id"])
        await client.delete(f"/api/v1/tasks/{first['id']}")
        assert (await asyncio.wait_for(waiting, 5))[1]["status"] == "CANCELLED"

        task = await create(client)
        waiting = asyncio.create_task(get_status(client, task["id"], since="NEW", wait="30"))
        await until_waiting(client, task["id"])
        proxy.cut()  # LISTEN is lost: this change's announcement reaches no one
        async with pool.acquire() as conn:
            await conn.execute("UPDATE tasks SET status = 'PENDING' WHERE id = $1", uuid.UUID(task["id"]))
            await events.announce(conn)
        proxy.restore()
        status, body = await asyncio.wait_for(waiting, 20)  # from the read after the reconnect
        assert (status, body["status"]) == (200, "PENDING")
    finally:
        await client.close()  # first: its listener row is deleted through the proxy
        await proxy.close()


async def test_the_spec_documents_wait_and_since(client):
    spec = await (await client.get("/api/docs/swagger.json")).json()
    parameters = {p["name"]: p for p in spec["paths"]["/api/v1/tasks/{task_id}/status"]["get"]["parameters"]}
    assert parameters["wait"]["schema"]["type"] == "number"
    assert (parameters["wait"]["schema"]["minimum"], parameters["wait"]["schema"]["maximum"]) == (0, 60)
    assert set(parameters["since"]["schema"]["enum"]) == {"NEW", "PENDING", "IN_PROGRESS", "COMPLETED",
                                                          "FAILED", "CANCELLED"}


async def test_the_worker_names_the_tasks_it_completed_in_its_announcement(pool, running, settings):
    """What lets a wait be answered without the feed's read: while some process listens, the
    worker's announcement after a completion carries the task's id."""
    heard: list[str] = []
    listener = await asyncpg.connect(settings.database_url)
    await listener.add_listener("task_events", lambda *args: heard.append(args[3]))
    row = uuid.uuid4()
    async with pool.acquire() as conn:  # as an API process with a wait open keeps it
        await conn.execute("INSERT INTO stream_listeners (listener, expires_at) "
                           "VALUES ($1, now() + interval '1 minute')", row)
    try:
        running(dispatcher.main)
        running(worker.main)
        task_id = await new_task(pool, "named when done")
        await wait_for_status(pool, [task_id], "COMPLETED")
        async with asyncio.timeout(5):
            while not any(task_id.hex in payload.partition(" ")[2].split(",") for payload in heard):
                await asyncio.sleep(0.01)
    finally:
        await listener.close()
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM stream_listeners WHERE listener = $1", row)
