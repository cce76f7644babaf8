"""Concurrency and rate limits per kind, over several workers (in the test's loop) sharing one
database and queue: the limit holds whatever the workers' own concurrency, what it holds back
waits without spinning and shows in the stats, and kinds without a limit are not slowed."""

import asyncio
import time

import pytest

from taskservice import dispatcher, limits, worker
from taskservice.kinds import Rate
from tests.support import handlers_for_tests
from tests.support.execution import new_task, wait_for_status

STATS = "/api/v1/stats"
RETRY_SECONDS = 0.3


def workers(running, count: int, **overrides) -> None:
    # Polling the outbox far more often than a held task comes due: a task that spun would show.
    running(dispatcher.main, dispatch_poll_seconds=0.05)
    for n in range(count):
        running(worker.main, worker_id=f"limits-worker-{n}", worker_concurrency=8,
                kind_limit_retry_seconds=RETRY_SECONDS, **overrides)


async def outbox_rows_per_task(pool, ids) -> list[int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT task_id, count(*) AS n FROM outbox WHERE task_id = ANY($1) GROUP BY 1", ids)
    return [row["n"] for row in rows]


async def until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def limit_stats(client, kind: str) -> dict:
    body = await (await client.get(STATS)).json()
    [entry] = [item for item in body["limits"] if item["kind"] == kind]
    return entry


async def test_concurrency_limit_holds_over_three_workers_and_nothing_spins(pool, running):
    handlers_for_tests.LIMITED_RUNS.update(now=0, most=0, runs=0)
    workers(running, 3)
    started = time.monotonic()
    ids = [await new_task(pool, f"limited {n}", kind="two_at_a_time", payload={"seconds": 0.05})
           for n in range(50)]
    rows = await wait_for_status(pool, ids, "COMPLETED", timeout=180)
    elapsed = time.monotonic() - started
    # Three workers with 8 slots each, yet never more than 2 handlers of the kind at once.
    assert handlers_for_tests.LIMITED_RUNS["most"] == 2
    assert handlers_for_tests.LIMITED_RUNS["runs"] == 50
    assert all(row["attempts"] == 1 for row in rows.values())
    # Every refusal delays the task's next message by at least the retry delay: a task that
    # spun would have far more outbox rows than that allows.
    per_task = await outbox_rows_per_task(pool, ids)
    assert len(per_task) == 50
    assert max(per_task) <= 2 + elapsed / RETRY_SECONDS, (max(per_task), elapsed)
    assert max(per_task) > 1  # some were held back (the check above is about them)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM kind_limit_waits WHERE task_id = ANY($1)", ids) == 0


async def test_a_held_back_backlog_shows_in_stats_and_other_kinds_run_freely(pool, running, client):
    gate = f"gate-{time.monotonic_ns()}"
    workers(running, 2)
    held = [await new_task(pool, f"gated {n}", kind="gated_pair", payload={"gate": gate}) for n in range(4)]

    async def two_running_two_waiting() -> bool:
        entry = await limit_stats(client, "gated_pair")
        return entry["running"] == 2 and entry["waiting"] == 2

    try:
        await until(two_running_two_waiting)
        entry = await limit_stats(client, "gated_pair")
        assert entry["concurrency"] == 2 and entry["rate"] is None and entry["oldest_wait_seconds"] > 0
        # The limited kind is at its limit; tasks of a kind without one start at once, each
        # from its first message.
        free = [await new_task(pool, f"free {n}") for n in range(20)]
        await wait_for_status(pool, free, "COMPLETED", timeout=60)
        assert await outbox_rows_per_task(pool, free) == [1] * 20
        async with pool.acquire() as conn:
            statuses = sorted(await conn.fetch("SELECT status FROM tasks WHERE id = ANY($1)", held))
            assert [row["status"] for row in statuses] == ["IN_PROGRESS", "IN_PROGRESS", "PENDING", "PENDING"]
            assert await conn.fetchval("SELECT count(*) FROM kind_limit_waits WHERE task_id = ANY($1)", free) == 0
    finally:
        handlers_for_tests.ASYNC_GATES.setdefault(gate, asyncio.Event()).set()
    await wait_for_status(pool, held, "COMPLETED", timeout=60)
    entry = await limit_stats(client, "gated_pair")
    assert (entry["running"], entry["waiting"], entry["oldest_wait_seconds"]) == (0, 0, 0)


async def test_rate_limit_holds_over_two_workers(pool, running):
    """20/s with a bucket of one second's worth (20): any run of starts from the i-th to the j-th
    (in start order) spans at least (j - i + 1 - 20) / 20 seconds, so no 1 s window beyond the
    first holds more than 20 starts plus what the bucket had saved."""
    workers(running, 2)
    ids = [await new_task(pool, f"rated {n}", kind="twenty_a_second") for n in range(100)]
    await wait_for_status(pool, ids, "COMPLETED", timeout=180)
    assert all(handlers_for_tests.RATED_RUNS[str(task_id)] == 1 for task_id in ids)
    async with pool.acquire() as conn:
        starts = [row["at"] for row in await conn.fetch(
            "SELECT extract(epoch FROM started_at)::float8 AS at FROM tasks WHERE id = ANY($1) ORDER BY 1", ids)]
    capacity, rate = 20, 20
    worst = max((j - i + 1) - rate * (starts[j] - starts[i]) for i in range(100) for j in range(i, 100))
    assert worst <= capacity + 1e-6, worst
    assert starts[-1] - starts[0] >= (100 - capacity) / rate - 1e-6


@pytest.mark.parametrize("restarts", [1, 2])
async def test_a_restart_does_not_refill_the_bucket(pool, restarts):
    kind = f"bucket-{time.monotonic_ns()}"
    async with pool.acquire() as conn:
        [row] = await limits.declare(conn, {kind: limits.Limit(None, Rate(10, 3600))}, [])
        assert row["tokens"] == 1  # a new bucket is full: one second's worth, at least one start
        await conn.execute("UPDATE kind_limits SET tokens = 0 WHERE kind = $1", kind)
        for _ in range(restarts):
            [row] = await limits.declare(conn, {kind: limits.Limit(4, Rate(10, 3600))}, [])
        assert (row["concurrency"], row["tokens"]) == (4, 0)
        await limits.declare(conn, {}, [kind])  # declared without limits: the row goes
        assert await conn.fetchval("SELECT count(*) FROM kind_limits WHERE kind = $1", kind) == 0


async def test_a_refused_task_waits_longer_after_each_refusal(pool):
    """At the limit, a claim starts nothing: the task stays PENDING, its next message is due
    after the retry delay times its refusals (with up to as much again of jitter), and it is
    counted as waiting until a claim takes it."""
    kind = f"one-{time.monotonic_ns()}"
    async with pool.acquire() as conn:
        await limits.declare(conn, {kind: limits.Limit(1, None)}, [])
        first, second = [await new_task(pool, f"refused {n}", kind=kind) for n in range(2)]
        await conn.execute("UPDATE tasks SET status = 'PENDING' WHERE id = ANY($1)", [first, second])  # dispatched

        async def claim(task_id):
            outbox_id = await conn.fetchval("SELECT max(id) FROM outbox WHERE task_id = $1", task_id)
            async with conn.transaction():
                assert await limits.lock(conn, [task_id]) == [kind]
                [row] = await limits.claim(conn, [(task_id, outbox_id)], "worker-1", 60, 10)
            return row

        assert (await claim(first))["status"] == "IN_PROGRESS"
        for refusals in (1, 2, 3):
            assert await claim(second) is None
            due_in = await conn.fetchval(
                "SELECT extract(epoch FROM max(available_at) - now()) FROM outbox WHERE task_id = $1", second)
            assert 10 * refusals - 1 <= due_in <= 20 * refusals + 1, (refusals, due_in)
            assert await conn.fetchval("SELECT refusals FROM kind_limit_waits WHERE task_id = $1", second) == refusals
        assert await conn.fetchval("SELECT status FROM tasks WHERE id = $1", second) == "PENDING"
        await conn.execute("UPDATE tasks SET status = 'CANCELLED', finished_at = now(), worker_id = NULL, "
                           "lease_expires_at = NULL WHERE id = $1", first)
        assert (await claim(second))["status"] == "IN_PROGRESS"
        assert await conn.fetchval("SELECT count(*) FROM kind_limit_waits WHERE task_id = $1", second) == 0
        await conn.execute("UPDATE tasks SET status = 'CANCELLED', finished_at = now(), worker_id = NULL, "
                           "lease_expires_at = NULL WHERE id = $1", second)
