"""GET /api/v1/stats/throughput: tasks created, completed and failed per second, from task_events."""

from datetime import datetime, timedelta

import pytest

from taskservice import dispatcher, worker
from tests.support.execution import new_task, wait_for_status

THROUGHPUT = "/api/v1/stats/throughput"


async def throughput(client, **params) -> dict:
    resp = await client.get(THROUGHPUT, params=params)
    assert resp.status == 200
    return await resp.json()


def by_second(body: dict) -> dict[datetime, tuple[int, int, int]]:
    return {datetime.fromisoformat(p["at"]): (p["created"], p["completed"], p["failed"]) for p in body["points"]}


async def test_events_are_counted_in_their_second(client, pool):
    task_id = await new_task(pool)
    async with pool.acquire() as conn:
        # Half an hour back: a second no other test writes events in.
        second = await conn.fetchval("SELECT date_trunc('second', now() - interval '30 minutes')")
    before = by_second(await throughput(client, minutes=60))
    events = [(0.1, "NEW"), (0.2, "NEW"), (0.9, "COMPLETED"), (1.0, "FAILED"), (1.5, "PENDING"), (1.6, "NEW")]
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO task_events (task_id, status, attempt, created_at) VALUES ($1, $2, 1, $3)",
            [(task_id, status, second + timedelta(seconds=offset)) for offset, status in events])
    body = await throughput(client, minutes=60)
    after = by_second(body)
    first, next_one = second, second + timedelta(seconds=1)
    assert first not in before and next_one not in before
    assert (after[first], after[next_one]) == ((2, 1, 0), (1, 0, 1))  # PENDING is not counted
    assert body["bucket_seconds"] == 1
    since, until = datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["until"])
    assert until - since == timedelta(minutes=60)
    ats = [datetime.fromisoformat(p["at"]) for p in body["points"]]
    assert ats == sorted(ats) and all(since < at <= until for at in ats)
    # Outside a 5-minute window.
    assert first not in by_second(await throughput(client))


async def test_counts_follow_tasks_that_run(client, pool, running):
    async with pool.acquire() as conn:
        started = await conn.fetchval("SELECT date_trunc('second', now())")

    async def totals() -> list[int]:
        points = [p for p in (await throughput(client, minutes=1))["points"]
                  if datetime.fromisoformat(p["at"]) >= started]
        return [sum(p[k] for p in points) for k in ("created", "completed", "failed")]

    before = await totals()  # what earlier tests wrote in this same second
    running(dispatcher.main)
    running(worker.main)
    done = [await new_task(pool, "ok") for _ in range(3)]
    failed = [await new_task(pool, "bad", kind="fail", max_attempts=1) for _ in range(2)]
    await wait_for_status(pool, done, "COMPLETED")
    await wait_for_status(pool, failed, "FAILED")
    assert [n - b for n, b in zip(await totals(), before, strict=True)] == [5, 3, 2]


async def test_nothing_recent_is_an_empty_list_with_its_window(client):
    body = await throughput(client, minutes=1)
    assert datetime.fromisoformat(body["until"]) - datetime.fromisoformat(body["since"]) == timedelta(minutes=1)
    assert isinstance(body["points"], list)


@pytest.mark.parametrize("minutes", ["0", "61", "-5", "soon", "1.5"])
async def test_minutes_out_of_range_is_422(client, minutes):
    resp = await client.get(THROUGHPUT, params={"minutes": minutes})
    assert (resp.status, resp.content_type) == (422, "application/problem+json")
    assert "minutes" in (await resp.json())["errors"]
