"""GET /api/v1/tasks/stream: status changes as Server-Sent Events, live, filtered, resumable."""

import asyncio
import dataclasses
import signal
import uuid
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from taskservice import dispatcher, events, worker
from taskservice.api.app import create_app
from taskservice.api.event_feed import EVENT_FEED, GAP_SECONDS, MAX_GAPS, EventFeed, track_gaps
from taskservice.api.keys import PROCESS_ID
from taskservice.settings import SettingsError, load_settings
from tests.support.execution import TcpProxy
from tests.support.processes import free_port, process_logging_to, wait_for_line
from tests.support.sse import EventReader, Message

STREAM = "/api/v1/tasks/stream"
TASKS = "/api/v1/tasks/"
PROMPT = 0.2  # the most an event may lag behind the change (the bound)


async def connect(client, params=None, headers=None) -> tuple[aiohttp.ClientResponse, EventReader]:
    resp = await client.get(STREAM, params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache" and resp.headers["X-Accel-Buffering"] == "no"
    reader = EventReader(resp)
    assert (await reader.next()).retry == 2000  # the first message
    return resp, reader


async def create(client, **body) -> dict:
    resp = await client.post(TASKS, json={"name": "streamed", **body})
    assert resp.status == 201
    return await resp.json()


async def cancel(client, task_id: str) -> None:
    assert (await client.delete(f"/api/v1/tasks/{task_id}")).status == 200


async def events_until(reader: EventReader, task_id: str, status: str) -> list[Message]:
    """Every event up to and including `task_id` reaching `status`."""
    seen = []
    while True:
        message = await reader.next_event()
        seen.append(message)
        data = message.json()
        if (data.get("task_id"), data.get("status")) == (task_id, status):
            return seen


async def listener_row(pool, app):
    async with pool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM stream_listeners WHERE listener = $1",
                                   app[EVENT_FEED].listener_id)


async def test_changes_arrive_in_order_within_200ms(client):
    resp, reader = await connect(client)
    assert (await reader.until_ready()) == ([], {"resumed": False, "replayed": 0})
    loop = asyncio.get_running_loop()

    task = await create(client, priority="HIGH")
    answered = loop.time()
    new = await reader.next_event()
    new_lag = loop.time() - answered
    assert new.event == "status"
    assert new.json() == {"id": new.id, "task_id": task["id"], "from_status": None, "status": "NEW",
                          "priority": "HIGH", "queue": "default", "attempt": 0,
                          "created_at": new.json()["created_at"]}
    assert new.json()["created_at"].endswith("+00:00")

    await cancel(client, task["id"])
    answered = loop.time()
    cancelled = await reader.next_event()
    cancelled_lag = loop.time() - answered
    assert (cancelled.event, cancelled.json()["from_status"], cancelled.json()["status"]) == \
        ("status", "NEW", "CANCELLED")
    assert cancelled.id > new.id and cancelled.json()["id"] == cancelled.id
    assert max(new_lag, cancelled_lag) < PROMPT, (new_lag, cancelled_lag)
    resp.close()


async def test_a_change_made_outside_the_api_is_streamed(client, pool):
    task = await create(client)
    resp, reader = await connect(client, {"task_id": task["id"]})
    await reader.until_ready()
    async with pool.acquire() as conn:  # as a dispatcher would: commit, then announce
        await conn.execute("UPDATE tasks SET status = 'PENDING' WHERE id = $1", uuid.UUID(task["id"]))
        await events.announce(conn)
    data = (await reader.next_event()).json()
    assert (data["task_id"], data["from_status"], data["status"]) == (task["id"], "NEW", "PENDING")
    resp.close()


async def test_a_change_committed_while_listen_is_down_is_caught_up_once(aiohttp_client, settings, pool):
    # The app reaches PostgreSQL through a proxy the test can cut; the test's own pool does not.
    target = urlsplit(settings.database_url)
    proxy = TcpProxy(target.hostname, target.port or 5432)
    await proxy.start()
    url = urlunsplit(target._replace(netloc=f"{target.username or 'postgres'}@127.0.0.1:{proxy.port}"))
    client = await aiohttp_client(create_app(dataclasses.replace(settings, database_url=url)))
    try:
        task = await create(client)
        resp, reader = await connect(client)
        await reader.until_ready()
        proxy.cut()  # LISTEN is lost: this change's announcement reaches no one
        async with pool.acquire() as conn:
            await conn.execute("UPDATE tasks SET status = 'PENDING' WHERE id = $1", uuid.UUID(task["id"]))
            await events.announce(conn)
        proxy.restore()
        pending = await reader.next_event(timeout=15)  # from the read after the reconnect
        assert (pending.json()["task_id"], pending.json()["status"]) == (task["id"], "PENDING")
        await cancel(client, task["id"])
        cancelled = await reader.next_event()  # nothing twice in between
        assert (cancelled.json()["task_id"], cancelled.json()["status"]) == (task["id"], "CANCELLED")
        resp.close()
    finally:
        await client.close()  # first: its stream listener row is deleted through the proxy
        await proxy.close()


async def test_filters_deliver_only_matching_changes(client):
    target = await create(client, priority="HIGH")
    by_task = await connect(client, {"task_id": target["id"]})
    by_status = await connect(client, {"status": "CANCELLED"})
    by_priority = await connect(client, {"priority": "HIGH"})
    for _, reader in (by_task, by_status, by_priority):
        await reader.until_ready()

    low = await create(client, priority="LOW")  # matches no filter
    high = await create(client, priority="HIGH")  # the priority filter
    await cancel(client, low["id"])  # the status filter
    await cancel(client, target["id"])  # all three: the last event each stream gets

    def seen(messages):
        return [(m.json()["task_id"], m.json()["status"]) for m in messages]
    last = (target["id"], "CANCELLED")
    assert seen(await events_until(by_task[1], *last)) == [last]
    assert seen(await events_until(by_status[1], *last)) == [(low["id"], "CANCELLED"), last]
    assert seen(await events_until(by_priority[1], *last)) == [(high["id"], "NEW"), last]
    for resp, _ in (by_task, by_status, by_priority):
        resp.close()


@pytest.mark.parametrize("params, headers, field", [
    ({"status": "DONE"}, None, "status"),
    ({"priority": "URGENT"}, None, "priority"),
    ({"task_id": "not-a-uuid"}, None, "task_id"),
    ({"last_event_id": "-1"}, None, "last_event_id"),
    ({"last_event_id": "x"}, None, "last_event_id"),
    (None, {"Last-Event-ID": "abc"}, "Last-Event-ID"),
])
async def test_a_bad_filter_is_422(client, params, headers, field):
    resp = await client.get(STREAM, params=params, headers=headers)
    assert (resp.status, resp.content_type) == (422, "application/problem+json")
    assert field in (await resp.json())["errors"]


async def test_heartbeats_flow(aiohttp_client, settings):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, stream_heartbeat_seconds=0.2)))
    resp, reader = await connect(client)
    await reader.until_ready()
    heartbeats = 0
    while heartbeats < 2:
        message = await reader.next(timeout=3)
        heartbeats += message.comments == ["heartbeat"]
    resp.close()


async def test_a_disconnected_client_resumes_with_exactly_the_missed_changes(client):
    resp, reader = await connect(client)
    await reader.until_ready()
    first = await create(client)
    seen = await reader.next_event()
    assert seen.json()["task_id"] == first["id"]
    resp.close()

    second = await create(client)
    await cancel(client, first["id"])
    await cancel(client, second["id"])
    missed = [(second["id"], "NEW"), (first["id"], "CANCELLED"), (second["id"], "CANCELLED")]

    for params, headers in (({}, {"Last-Event-ID": str(seen.id)}),
                            ({"last_event_id": str(seen.id)}, {}),
                            ({"last_event_id": "0"}, {"Last-Event-ID": str(seen.id)})):  # the header wins
        resp, reader = await connect(client, params, headers)
        replayed, ready = await reader.until_ready()
        assert ready == {"resumed": True, "replayed": len(missed)}
        assert [(m.json()["task_id"], m.json()["status"]) for m in replayed] == missed
        ids = [m.id for m in replayed]
        assert ids == sorted(ids) and ids[0] > seen.id and [m.json()["id"] for m in replayed] == ids
        # Then live, with nothing replayed twice.
        third = await create(client)
        live = await reader.next_event()
        assert (live.json()["task_id"], live.json()["status"]) == (third["id"], "NEW")
        assert live.id > ids[-1]
        resp.close()
        await cancel(client, third["id"])
        missed += [(third["id"], "NEW"), (third["id"], "CANCELLED")]  # the next variant replays these too


async def test_a_resume_filtered_by_task_replays_only_that_task(client):
    a, b = await create(client), await create(client)
    a_new = (await (await client.get(f"/api/v1/tasks/{a['id']}/events")).json())["items"][0]["id"]
    await cancel(client, b["id"])
    await cancel(client, a["id"])
    resp, reader = await connect(client, {"task_id": a["id"]}, {"Last-Event-ID": str(a_new - 1)})
    replayed, ready = await reader.until_ready()
    assert [(m.json()["task_id"], m.json()["status"]) for m in replayed] == [(a["id"], "NEW"), (a["id"], "CANCELLED")]
    assert ready == {"resumed": True, "replayed": 2}
    resp.close()


async def test_more_missed_changes_than_the_replay_limit_is_a_reset(aiohttp_client, settings):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, stream_replay_limit=2)))
    first = await create(client)
    first_id = (await (await client.get(f"/api/v1/tasks/{first['id']}/events")).json())["items"][0]["id"]
    for _ in range(3):
        await create(client)
    resp, reader = await connect(client, headers={"Last-Event-ID": str(first_id)})
    before, ready = await reader.until_ready()
    assert [m.event for m in before] == ["reset"] and before[0].json() == {}
    assert before[0].id > first_id  # the client's position moves past what it will reload
    assert ready == {"resumed": True, "replayed": 0}
    task = await create(client)  # and the stream goes on live
    assert (await reader.next_event()).json()["task_id"] == task["id"]
    resp.close()


async def test_a_last_event_id_this_database_never_gave_is_a_reset(client):
    # E.g. after a restore: the id is ahead of every event, so live events would all look seen.
    resp, reader = await connect(client, headers={"Last-Event-ID": str(10**15)})
    before, ready = await reader.until_ready()
    assert [m.event for m in before] == ["reset"] and before[0].id < 10**15
    assert ready == {"resumed": True, "replayed": 0}
    task = await create(client)
    assert (await reader.next_event()).json()["task_id"] == task["id"]
    resp.close()


async def test_a_client_too_slow_for_its_buffer_gets_a_reset(aiohttp_client, settings, pool):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, stream_queue_size=1)))
    ids = [uuid.UUID((await create(client))["id"]) for _ in range(5)]
    resp, reader = await connect(client)
    await reader.until_ready()
    # One commit, five events read and delivered together: more than the one-event buffer holds.
    async with pool.acquire() as conn:
        await conn.execute("UPDATE tasks SET status = 'PENDING' WHERE id = ANY($1)", ids)
        await events.announce(conn)
    messages = [await reader.next_event()]
    while messages[-1].event != "reset":
        messages.append(await reader.next_event())
    assert len(messages) < 5
    resp.close()


async def test_auth_applies_to_the_stream(aiohttp_client, settings):
    key = "stream-key-0123456789abcdef"
    client = await aiohttp_client(create_app(dataclasses.replace(settings, api_keys=(key,))))
    resp = await client.get(STREAM)
    assert (resp.status, resp.content_type) == (401, "application/problem+json")
    assert (await client.get(STREAM, headers={"Authorization": "Bearer wrong-key-0123456789"})).status == 401
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        resp, reader = await connect(client, headers=headers)
        assert (await reader.until_ready())[1] == {"resumed": False, "replayed": 0}
        resp.close()


async def test_the_listener_row_lives_only_while_a_stream_is_open(client, pool):
    assert await listener_row(pool, client.app) is None
    first, _ = await connect(client)
    second, reader = await connect(client)
    await reader.until_ready()
    row = await listener_row(pool, client.app)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT $1 > now() + interval '5 seconds'", row["expires_at"])
    first.close()
    await asyncio.sleep(1.5)  # past the disconnect check: one stream is still open
    assert await listener_row(pool, client.app) is not None
    second.close()
    for _ in range(100):  # the stream notices the disconnect within a second, then the row goes
        if await listener_row(pool, client.app) is None:
            break
        await asyncio.sleep(0.05)
    assert await listener_row(pool, client.app) is None
    async with pool.acquire() as conn:  # no other live row: announcements send nothing
        assert await conn.fetchval("SELECT count(*) FROM stream_listeners WHERE expires_at > now()") == 0


async def test_writers_announce_only_while_a_stream_is_open(client, pool, settings):
    listener = await asyncpg.connect(settings.database_url)
    heard = asyncio.Queue()
    await listener.add_listener("task_events", lambda _conn, _pid, _channel, payload: heard.put_nowait(payload))
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM stream_listeners WHERE expires_at > now()") == 0
            await events.announce(conn)
        await asyncio.sleep(0.3)
        await listener.fetchval("SELECT 1")  # a round trip: a NOTIFY sent would have arrived by now
        assert heard.empty()

        resp, reader = await connect(client)
        await reader.until_ready()
        async with pool.acquire() as conn:
            # The process whose stream it is needs no notification: its feed is woken in-process.
            await events.announce(conn, sender=client.app[PROCESS_ID])
            await asyncio.sleep(0.3)
            await listener.fetchval("SELECT 1")
            assert heard.empty()
            await events.announce(conn)
        assert await asyncio.wait_for(heard.get(), 5) == ""
        resp.close()
    finally:
        await listener.close()


async def test_a_change_committed_out_of_id_order_arrives_once(client, pool):
    # Different priorities: the two updates move different counter rows, so the second cannot
    # wait on the first's open transaction when both connections hash to one counter shard.
    a, b = await create(client, priority="LOW"), await create(client, priority="HIGH")
    resp, reader = await connect(client)
    await reader.until_ready()
    async with pool.acquire() as holder, pool.acquire() as other:
        held = holder.transaction()
        await held.start()
        # A's event takes the lower id but stays uncommitted while B's (higher id) commits.
        await holder.execute("UPDATE tasks SET status = 'PENDING' WHERE id = $1", uuid.UUID(a["id"]))
        await other.execute("UPDATE tasks SET status = 'PENDING' WHERE id = $1", uuid.UUID(b["id"]))
        await events.announce(other)
        later = await reader.next_event()
        assert (later.json()["task_id"], later.json()["status"], later.id) == (b["id"], "PENDING", later.json()["id"])
        await held.commit()
        await events.announce(holder)
        earlier = await reader.next_event()
    assert (earlier.json()["task_id"], earlier.json()["status"]) == (a["id"], "PENDING")
    assert earlier.json()["id"] < later.id and earlier.id is None  # no `id:` line: it would move back
    await cancel(client, a["id"])
    after = await reader.next_event()  # nothing twice in between
    assert (after.json()["task_id"], after.json()["status"]) == (a["id"], "CANCELLED")
    resp.close()


def test_gaps_are_looked_for_until_they_commit_or_expire():
    hub = EventFeed(cursor=10)
    track_gaps(hub, [{"id": 11}, {"id": 14}], now=100.0)  # 12 and 13 not committed yet
    assert (hub.cursor, hub.gaps) == (14, {12: 100.0, 13: 100.0})
    track_gaps(hub, [{"id": 12}, {"id": 15}], now=101.0)  # 12 committed late: no longer a gap
    assert (hub.cursor, hub.gaps) == (15, {13: 100.0})
    track_gaps(hub, [], now=100.0 + GAP_SECONDS + 1)  # 13 never committed (rolled back): forgotten
    assert hub.gaps == {}
    track_gaps(hub, [{"id": 15 + MAX_GAPS + 10}], now=200.0)  # a jump: only the newest gaps are kept
    assert len(hub.gaps) == MAX_GAPS and min(hub.gaps) == 25 and max(hub.gaps) == 15 + MAX_GAPS + 9


@pytest.mark.parametrize("embedded", [False, True], ids=["standalone dispatcher", "embedded dispatcher"])
async def test_the_worker_and_dispatcher_changes_arrive_within_200ms(aiohttp_client, settings, pool, running,
                                                                     embedded):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, dispatcher_embedded=embedded)))
    if not embedded:
        running(dispatcher.main)
    running(worker.main)
    resp, reader = await connect(client)
    await reader.until_ready()
    warm_up = await create(client, kind="echo")  # first uses (prepared statements, connections) out of the way
    await events_until(reader, warm_up["id"], "COMPLETED")
    loop = asyncio.get_running_loop()
    # Running for a while: IN_PROGRESS must arrive on its own, not with COMPLETED.
    task = await create(client, kind="watched_sleep", payload={"seconds": 0.5})
    committed, arrived = {"NEW": loop.time()}, {}  # the API answers after its commit

    async def watch_commits() -> None:
        """When each status change became visible (committed), to within 10 ms."""
        async with pool.acquire() as conn:
            while "COMPLETED" not in committed:
                for row in await conn.fetch("SELECT status FROM task_events WHERE task_id = $1",
                                            uuid.UUID(task["id"])):
                    committed.setdefault(row["status"], loop.time())
                await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch_commits())
    while "COMPLETED" not in arrived:
        data = (await reader.next_event()).json()
        if data["task_id"] == task["id"]:
            arrived[data["status"]] = loop.time()
    await asyncio.wait_for(watcher, 5)
    assert list(arrived) == ["NEW", "PENDING", "IN_PROGRESS", "COMPLETED"]
    lags = {status: arrived[status] - committed[status] for status in arrived}
    assert max(lags.values()) < PROMPT, lags
    resp.close()


async def test_an_open_stream_does_not_hold_up_shutdown(settings):
    server = TestServer(create_app(settings))
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        resp = await session.get(server.make_url(STREAM))
        reader = EventReader(resp)
        await reader.until_ready()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.close()
        assert loop.time() - started < 3
        while await reader.next(timeout=3) is not None:  # the server ended the stream
            pass


async def test_sigterm_ends_an_api_process_with_a_stream_open(settings, tmp_path):
    port = free_port()
    env = {"DATABASE_URL": settings.database_url, "AMQP_URL": settings.amqp_url, "HOST": "127.0.0.1",
           "PORT": str(port), "DISPATCHER_EMBEDDED": "false"}
    log_path = tmp_path / "api.log"
    with process_logging_to("api", env, log_path) as process:
        await asyncio.to_thread(wait_for_line, process, log_path, "api listening")
        async with aiohttp.ClientSession() as session:
            resp = await session.get(f"http://127.0.0.1:{port}{STREAM}")
            reader = EventReader(resp)
            await reader.until_ready()
            process.send_signal(signal.SIGTERM)
            while await reader.next(timeout=10) is not None:  # the server ends the stream
                pass
        assert await asyncio.to_thread(process.wait, 10) == 0, log_path.read_text()


def test_stream_settings_are_validated():
    settings = load_settings({"STREAM_HEARTBEAT_SECONDS": "0.5", "STREAM_REPLAY_LIMIT": "10",
                              "STREAM_QUEUE_SIZE": "20"})
    assert (settings.stream_heartbeat_seconds, settings.stream_replay_limit, settings.stream_queue_size) == \
        (0.5, 10, 20)
    defaults = load_settings({})
    assert (defaults.stream_heartbeat_seconds, defaults.stream_replay_limit, defaults.stream_queue_size) == \
        (15, 1000, 1000)
    for name, value in (("STREAM_HEARTBEAT_SECONDS", "0"), ("STREAM_HEARTBEAT_SECONDS", "31"),
                        ("STREAM_REPLAY_LIMIT", "0"),
                        ("STREAM_QUEUE_SIZE", "many")):
        with pytest.raises(SettingsError, match=name):
            load_settings({name: value})
