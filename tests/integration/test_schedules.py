"""Schedules against the real PostgreSQL and RabbitMQ: the API (create, read, edit, delete, run
now, 422s), and dispatchers firing them: each tick exactly once with three dispatchers, once
after downtime, overlap skip, edits and deletes while firing, tasks running to COMPLETED."""

import asyncio
import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskservice import dispatcher, worker
from tests.support.execution import wait_for_status

SCHEDULES = "/api/v1/schedules"
TASKS = "/api/v1/tasks/"


@pytest.fixture(autouse=True)
async def no_schedules_left(pool):
    """The database is shared by the run: a schedule left behind would fire into later tests."""
    yield
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM schedules")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_schedule(client, **body) -> dict:
    body = {"name": unique("schedule"), "task": {"name": unique("scheduled")}, **body}
    resp = await client.post(SCHEDULES, json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def fired(pool, schedule_id: str) -> list:
    async with pool.acquire() as conn:
        return await conn.fetch("SELECT * FROM tasks WHERE schedule_id = $1 ORDER BY scheduled_for",
                                uuid.UUID(schedule_id))


async def wait_for_fired(pool, schedule_id: str, count: int, timeout: float = 20) -> list:
    deadline = time.monotonic() + timeout
    while len(rows := await fired(pool, schedule_id)) < count:
        assert time.monotonic() < deadline, f"{len(rows)} of {count} tasks fired within {timeout}s"
        await asyncio.sleep(0.05)
    return rows


async def expect_422(resp, *fields: str) -> dict:
    assert resp.status == 422, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert set(problem["errors"]) == set(fields), problem
    for field in fields:
        assert field in problem["detail"]
    return problem


# -- the API ----------------------------------------------------------------------

async def test_a_cron_schedule_is_created_read_listed_and_shows_its_next_tick(client):
    before = datetime.now(UTC)
    resp = await client.post(SCHEDULES, json={
        "name": "reports", "cron": "*/5 * * * *", "timezone": "Europe/Berlin",
        "task": {"name": "report", "priority": "HIGH", "payload": {"kind": "weekly"}, "kind": "echo"},
        "overlap": "skip"})
    assert resp.status == 201, await resp.text()
    schedule = await resp.json()
    assert resp.headers["Location"] == f"/api/v1/schedules/{schedule['id']}"
    assert {k: schedule[k] for k in ("name", "cron", "every", "timezone", "enabled", "overlap", "last_run_at",
                                     "last_task_id", "last_task_status")} == {
        "name": "reports", "cron": "*/5 * * * *", "every": None, "timezone": "Europe/Berlin", "enabled": True,
        "overlap": "skip", "last_run_at": None, "last_task_id": None, "last_task_status": None}
    # The template as each task will be created: the configured defaults filled in.
    assert schedule["task"] == {"name": "report", "description": None, "priority": "HIGH", "kind": "echo",
                                "payload": {"kind": "weekly"}, "max_attempts": 3, "timeout_seconds": 300}
    next_run_at = datetime.fromisoformat(schedule["next_run_at"])
    assert before < next_run_at <= before + timedelta(minutes=5)
    assert next_run_at.minute % 5 == 0 and next_run_at.second == 0 and next_run_at.microsecond == 0

    assert await (await client.get(f"{SCHEDULES}/{schedule['id']}")).json() == schedule
    listed = await (await client.get(f"{SCHEDULES}/?page_size=100")).json()
    assert schedule in listed["items"] and listed["total"] >= 1
    assert (listed["page"], listed["page_size"]) == (1, 100)


async def test_every_and_macros_are_accepted_and_defaults_apply(client):
    schedule = await create_schedule(client, every=90)
    assert (schedule["every"], schedule["cron"], schedule["timezone"], schedule["overlap"], schedule["enabled"]) \
        == (90, None, "UTC", "allow", True)
    assert int(datetime.fromisoformat(schedule["next_run_at"]).timestamp()) % 90 == 0
    for macro in ("@hourly", "@daily", "@weekly", "@monthly", "@yearly"):
        assert (await create_schedule(client, cron=macro))["cron"] == macro
    disabled = await create_schedule(client, every=5, enabled=False)
    assert disabled["next_run_at"] is None


async def test_invalid_schedules_are_422_naming_the_field(client):
    task = {"name": "t"}
    cases = [
        ({"name": "s", "task": task}, ["cron"]),  # neither cron nor every
        ({"name": "s", "task": task, "cron": "@daily", "every": 5}, ["every"]),
        ({"name": "s", "task": task, "cron": "61 * * * *"}, ["cron"]),
        ({"name": "s", "task": task, "cron": "* * * * * *"}, ["cron"]),
        ({"name": "s", "task": task, "cron": "0 0 30 2 *"}, ["cron"]),
        ({"name": "s", "task": task, "cron": "@daily", "timezone": "Europe/Atlantis"}, ["timezone"]),
        ({"name": "s", "task": task, "every": 0}, ["every"]),
        ({"name": "s", "task": task, "every": 1.5}, ["every"]),
        ({"name": "s", "task": task, "every": 5, "overlap": "queue"}, ["overlap"]),
        ({"name": "", "task": task, "every": 5}, ["name"]),
        ({"name": "s", "every": 5}, ["task"]),
        ({"name": "s", "every": 5, "task": {"priority": "URGENT"}}, ["task.name", "task.priority"]),
        ({"name": "s", "every": 5, "task": {"name": "t", "max_attempts": 99, "payload": [1]}},
         ["task.max_attempts", "task.payload"]),
    ]
    for body, fields in cases:
        await expect_422(await client.post(SCHEDULES, json=body), *fields)
    listed = await (await client.get(f"{SCHEDULES}/?page_size=100")).json()
    assert not [s for s in listed["items"] if s["name"] == "s"]


async def test_unknown_and_malformed_ids(client):
    missing = uuid.uuid4()
    for method, path, body in (("GET", f"{SCHEDULES}/{missing}", None),
                               ("PATCH", f"{SCHEDULES}/{missing}", {"name": "x"}),
                               ("DELETE", f"{SCHEDULES}/{missing}", None),
                               ("POST", f"{SCHEDULES}/{missing}/run", None)):
        resp = await client.request(method, path, json=body)
        assert resp.status == 404, (method, await resp.text())
        assert (await resp.json())["detail"] == "Schedule not found"
    await expect_422(await client.get(f"{SCHEDULES}/not-a-uuid"), "schedule_id")
    await expect_422(await client.get(f"{SCHEDULES}/?page=0"), "page")


async def test_patch_keeps_what_it_does_not_name_and_recomputes_the_next_run_on_timing_changes(client, pool):
    schedule = await create_schedule(client, cron="0 3 * * *", timezone="Europe/Berlin")
    url = f"{SCHEDULES}/{schedule['id']}"

    renamed = await (await client.patch(url, json={"name": "renamed", "overlap": "skip"})).json()
    assert renamed["name"] == "renamed" and renamed["overlap"] == "skip"
    assert renamed["next_run_at"] == schedule["next_run_at"] and renamed["cron"] == "0 3 * * *"
    assert renamed["updated_at"] > schedule["updated_at"]

    to_every = await (await client.patch(url, json={"every": 60})).json()
    assert (to_every["cron"], to_every["every"]) == (None, 60)
    assert datetime.fromisoformat(to_every["next_run_at"]) <= datetime.now(UTC) + timedelta(seconds=61)

    disabled = await (await client.patch(url, json={"enabled": False})).json()
    assert disabled["next_run_at"] is None and disabled["enabled"] is False
    enabled = await (await client.patch(url, json={"enabled": True, "cron": "@daily", "timezone": "Asia/Tokyo"})).json()
    next_run_at = datetime.fromisoformat(enabled["next_run_at"])
    assert (enabled["cron"], enabled["every"]) == ("@daily", None)
    assert next_run_at.astimezone(ZoneInfo("Asia/Tokyo")).hour == 0

    task = await (await client.patch(url, json={"task": {"name": "new template", "priority": "LOW"}})).json()
    assert task["task"]["name"] == "new template" and task["task"]["priority"] == "LOW"
    assert task["next_run_at"] == enabled["next_run_at"]

    # The same timing sent again is no change: a tick that is due stays due.
    due = datetime.now(UTC) - timedelta(minutes=1)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE schedules SET next_run_at = $2 WHERE id = $1", uuid.UUID(schedule["id"]), due)
    resent = await (await client.patch(url, json={"cron": "@daily", "timezone": "Asia/Tokyo", "enabled": True})).json()
    assert datetime.fromisoformat(resent["next_run_at"]) == due
    async with pool.acquire() as conn:
        await conn.execute("UPDATE schedules SET next_run_at = $2 WHERE id = $1", uuid.UUID(schedule["id"]),
                           next_run_at)
    before = await (await client.get(url)).json()

    # Refused edits change nothing.
    await expect_422(await client.patch(url, json={"cron": "nope"}), "cron")
    await expect_422(await client.patch(url, json={"timezone": "Nowhere/Else"}), "timezone")
    await expect_422(await client.patch(url, json={"cron": "@daily", "every": 5}), "every")
    await expect_422(await client.patch(url, json={"task": {"name": ""}}), "task.name")
    assert await (await client.get(url)).json() == before


async def test_run_now_creates_the_task_at_once_and_the_list_filters_by_schedule(client, pool):
    schedule = await create_schedule(client, cron="@yearly", task={"name": "manual", "payload": {"n": 1}})
    resp = await client.post(f"{SCHEDULES}/{schedule['id']}/run")
    assert resp.status == 201, await resp.text()
    task = await resp.json()
    assert resp.headers["Location"] == f"/api/v1/tasks/{task['id']}"
    assert (task["name"], task["payload"], task["status"], task["schedule_id"]) == (
        "manual", {"n": 1}, "NEW", schedule["id"])
    assert task["scheduled_for"] is not None
    assert await (await client.get(f"{TASKS}{task['id']}")).json() == task

    after = await (await client.get(f"{SCHEDULES}/{schedule['id']}")).json()
    assert (after["last_task_id"], after["last_task_status"]) == (task["id"], "NEW")
    assert after["last_run_at"] is not None and after["next_run_at"] == schedule["next_run_at"]

    second = await (await client.post(f"{SCHEDULES}/{schedule['id']}/run")).json()
    other = await create_schedule(client, cron="@yearly")
    await client.post(f"{SCHEDULES}/{other['id']}/run")
    page = await (await client.get(TASKS, params={"schedule_id": schedule["id"]})).json()
    assert [t["id"] for t in page["items"]] == [second["id"], task["id"]]
    assert (page["total"], page["total_exact"]) == (2, True)
    filtered = await (await client.get(TASKS, params={"schedule_id": schedule["id"], "status": "COMPLETED"})).json()
    assert (filtered["items"], filtered["total"]) == ([], 0)
    await expect_422(await client.get(TASKS, params={"schedule_id": "nope"}), "schedule_id")
    # A task created by a client has neither field.
    plain = await (await client.post(TASKS, json={"name": "plain"})).json()
    assert (plain["schedule_id"], plain["scheduled_for"]) == (None, None)


async def test_a_schedules_task_carries_its_queue_and_callback_url_checked_like_a_create(client):
    refused = await client.post(SCHEDULES, json={"name": unique("s"), "cron": "@yearly",
                                                 "task": {"name": "t", "callback_url": "http://127.0.0.1:9/h"}})
    await expect_422(refused, "task.callback_url")
    schedule = await create_schedule(client, cron="@yearly", task={
        "name": "routed", "queue": "emails", "callback_url": "https://93.184.215.14/h"})
    task = await (await client.post(f"{SCHEDULES}/{schedule['id']}/run")).json()
    assert (task["queue"], task["callback_url"]) == ("emails", "https://93.184.215.14/h")


# -- firing -------------------------------------------------------------------------

def ticks_of(rows) -> list[datetime]:
    return [row["scheduled_for"] for row in rows]


async def test_three_dispatchers_fire_every_tick_exactly_once_and_the_tasks_complete(client, pool, running):
    for _ in range(3):
        running(dispatcher.main)
    running(worker.main)
    schedule = await create_schedule(client, every=1, task={"name": unique("tick"), "kind": "noop"})
    await asyncio.sleep(9)
    resp = await client.patch(f"{SCHEDULES}/{schedule['id']}", json={"enabled": False})
    assert resp.status == 200
    stopped = await fired(pool, schedule["id"])
    await asyncio.sleep(2)
    rows = await fired(pool, schedule["id"])
    assert ticks_of(rows) == ticks_of(stopped), "a disabled schedule fired"

    ticks = ticks_of(rows)
    assert len(ticks) >= 5, ticks
    assert ticks[0] == datetime.fromisoformat(schedule["next_run_at"])
    # Every tick between the first and the last, each once: no duplicate, no gap.
    assert [b - a for a, b in itertools.pairwise(ticks)] == [timedelta(seconds=1)] * (len(ticks) - 1)
    assert all(row["name"] == schedule["task"]["name"] for row in rows)
    await wait_for_status(pool, [row["id"] for row in rows], "COMPLETED")
    last = await (await client.get(f"{SCHEDULES}/{schedule['id']}")).json()
    assert last["last_task_id"] == str(rows[-1]["id"]) and last["last_task_status"] == "COMPLETED"


async def test_ticks_missed_while_every_dispatcher_was_down_fire_once_when_one_starts(client, pool, running):
    schedule = await create_schedule(client, every=3600)
    upcoming = datetime.fromisoformat(schedule["next_run_at"])
    missed = upcoming - timedelta(hours=3)
    async with pool.acquire() as conn:  # as if it had been created three hours ago
        await conn.execute("UPDATE schedules SET next_run_at = $2 WHERE id = $1", uuid.UUID(schedule["id"]), missed)
    running(dispatcher.main)
    await wait_for_fired(pool, schedule["id"], 1)
    await asyncio.sleep(2)  # room for a wrong second firing
    rows = await fired(pool, schedule["id"])
    assert ticks_of(rows) == [missed]
    after = await (await client.get(f"{SCHEDULES}/{schedule['id']}")).json()
    assert datetime.fromisoformat(after["next_run_at"]) == upcoming
    assert after["last_task_id"] == str(rows[0]["id"])


async def test_a_schedule_created_with_no_dispatcher_running_fires_once_when_one_starts(client, pool, running):
    schedule = await create_schedule(client, every=1)
    await asyncio.sleep(3.5)  # three ticks or more pass with no dispatcher
    started = datetime.now(UTC)
    running(dispatcher.main)
    rows = await wait_for_fired(pool, schedule["id"], 3)
    ticks = ticks_of(rows)
    assert ticks[0] == datetime.fromisoformat(schedule["next_run_at"])  # the missed ticks, once
    assert ticks[1] > started - timedelta(seconds=1)  # then on from now: none of the missed ones
    assert ticks[2] - ticks[1] == timedelta(seconds=1)


async def test_overlap_skip_does_not_fire_while_the_last_task_is_unfinished(client, pool, running):
    running(dispatcher.main)  # no worker: the first task stays PENDING
    skipping = await create_schedule(client, every=1, overlap="skip")
    allowing = await create_schedule(client, every=1, overlap="allow")
    first = (await wait_for_fired(pool, skipping["id"], 1))[0]
    await wait_for_fired(pool, allowing["id"], 4)
    assert [row["id"] for row in await fired(pool, skipping["id"])] == [first["id"]]
    shown = await (await client.get(f"{SCHEDULES}/{skipping['id']}")).json()
    assert shown["last_task_status"] in ("NEW", "PENDING")
    assert datetime.fromisoformat(shown["next_run_at"]) > first["scheduled_for"] + timedelta(seconds=2)

    assert (await client.delete(f"{TASKS}{first['id']}")).status == 200  # finished: the next tick fires
    rows = await wait_for_fired(pool, skipping["id"], 2)
    assert rows[1]["scheduled_for"] > first["scheduled_for"] + timedelta(seconds=2)


async def test_patch_while_firing_takes_effect_from_the_next_tick(client, pool, running):
    running(dispatcher.main)
    running(dispatcher.main)
    schedule = await create_schedule(client, every=1)
    await wait_for_fired(pool, schedule["id"], 2)
    resp = await client.patch(f"{SCHEDULES}/{schedule['id']}", json={"every": 2, "task": {"name": "after"}})
    assert resp.status == 200
    changed_at = datetime.now(UTC)
    await asyncio.sleep(4.5)
    rows = await fired(pool, schedule["id"])
    later = [row for row in rows if row["created_at"] > changed_at + timedelta(seconds=0.5)]
    assert len(later) >= 2, ticks_of(rows)
    assert all(row["name"] == "after" and int(row["scheduled_for"].timestamp()) % 2 == 0 for row in later)
    assert [b - a for a, b in itertools.pairwise(ticks_of(later))] == \
        [timedelta(seconds=2)] * (len(later) - 1)


async def test_delete_while_firing_stops_it_and_leaves_its_tasks_without_a_schedule(client, pool, running):
    dispatchers = [running(dispatcher.main), running(dispatcher.main)]
    running(worker.main)
    schedule = await create_schedule(client, every=1)
    rows = await wait_for_fired(pool, schedule["id"], 3)
    resp = await client.delete(f"{SCHEDULES}/{schedule['id']}")
    assert resp.status == 200 and (await resp.json())["id"] == schedule["id"]
    assert (await client.get(f"{SCHEDULES}/{schedule['id']}")).status == 404
    await asyncio.sleep(2)
    async with pool.acquire() as conn:
        left = await conn.fetch("SELECT * FROM tasks WHERE name = $1 ORDER BY scheduled_for", schedule["task"]["name"])
    assert len(left) >= len(rows)
    assert {row["schedule_id"] for row in left} == {None}
    assert all(row["scheduled_for"] is not None for row in left)
    await wait_for_status(pool, [row["id"] for row in left], "COMPLETED")
    # Nothing fired after the delete committed, and the dispatchers carry on.
    async with pool.acquire() as conn:
        later = await conn.fetchval("SELECT count(*) FROM tasks WHERE name = $1", schedule["task"]["name"])
    assert later == len(left)
    assert not any(d.task.done() for d in dispatchers)
    page = await (await client.get(TASKS, params={"schedule_id": schedule["id"]})).json()
    assert page["items"] == []
