"""Chaos that runs in CI: workers and dispatchers killed with SIGKILL under a steady load, and the
database cut away from them, each ending with the invariants of tests/support/invariants.py.

The service runs as real processes (`python -m taskservice worker | dispatcher`) on the test's own
exchange and queue, with short leases and retries so recovery fits in the test's deadlines. Every
task runs the `counted` test handler, which writes a line per run to a file, so duplicate runs are
counted too. The figures (tasks, kills, how long the drain took after the last fault) are printed:
`pytest -s` shows them.
"""

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg

from taskservice import outbox
from tests.support.execution import TcpProxy, new_task, wait_for_status
from tests.support.invariants import FINAL, violations
from tests.support.services import ROOT

SEED = 10  # the load's mix and the order of the kills are the same on every run
DRAIN_DEADLINE_SECONDS = 120  # past a dispatcher's publish lease (30 s) with a wide margin


def service_env(settings, database_url: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "info",
            "DATABASE_URL": database_url, "AMQP_URL": settings.amqp_url,
            "AMQP_EXCHANGE": settings.amqp_exchange, "AMQP_QUEUE": settings.amqp_queue,
            "HANDLER_MODULES": "tests.support.handlers_for_tests",
            "DB_POOL_MAX": "4", "WORKER_CONCURRENCY": "4",
            "LEASE_SECONDS": "2", "REAP_INTERVAL_SECONDS": "0.5", "DISPATCH_POLL_SECONDS": "0.2",
            "RETRY_BASE_SECONDS": "0.05", "RETRY_MAX_SECONDS": "0.2", "SHUTDOWN_GRACE_SECONDS": "1"}


@dataclass
class Fleet:
    """The service's processes: each slot ("worker-1", "dispatcher-2", ...) runs one process at a
    time; `replace` kills a slot's process with SIGKILL and starts a new one in its place."""
    env: dict
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    started: Counter = field(default_factory=Counter)

    def start(self, slot: str) -> None:
        self.started[slot] += 1
        command = slot.split("-")[0]
        log_path = self.logs / f"{slot}.{self.started[slot]}.log"
        with log_path.open("w") as log:
            self.processes[slot] = subprocess.Popen(
                [sys.executable, "-m", "taskservice", command],
                env={**self.env, "WORKER_ID": f"soak-{slot}.{self.started[slot]}"},
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def check_alive(self) -> None:
        for slot, process in self.processes.items():
            if process.poll() is not None:
                log_path = self.logs / f"{slot}.{self.started[slot]}.log"
                raise AssertionError(f"{slot} exited by itself ({process.returncode}):\n{log_path.read_text()}")

    def replace(self, slot: str) -> None:
        process = self.processes[slot]
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        self.start(slot)

    async def stop_all(self, timeout: float = 30) -> dict[str, int]:
        """SIGTERM to all, then the exit codes. Waits without blocking the loop: the TCP proxy
        that carries their connections runs in it."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in self.processes.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        return {slot: process.returncode for slot, process in self.processes.items()}


def soak_task(rng: random.Random, runs_file: Path) -> dict:
    """One task of the mix: mostly quick, some sleeping long enough to be running when a worker
    dies, some failing for good (retried, then FAILED), some failing once then succeeding."""
    roll = rng.random()
    payload = {"runs_file": str(runs_file)}
    if roll < 0.45:
        payload["then"] = "noop"
    elif roll < 0.80:
        payload.update(then="sleep", seconds=round(rng.uniform(0.1, 1.0), 2))
    elif roll < 0.90:
        payload.update(then="fail")
    else:
        payload.update(then="fail", fail_attempts=1)
    return {"kind": "counted", "payload": payload, "priority": rng.choice(("LOW", "MEDIUM", "HIGH")),
            "max_attempts": rng.choice((1, 2, 3, 3, 5))}


async def create_steadily(pool: asyncpg.Pool, rng: random.Random, runs_file: Path, created: list[UUID],
                          per_second: float, stop: asyncio.Event) -> None:
    """Create tasks at `per_second` until `stop`, waking the dispatchers as the API does."""
    started = time.monotonic()
    while not stop.is_set():
        created.append(await new_task(pool, f"soak-{len(created)}", **soak_task(rng, runs_file)))
        async with pool.acquire() as conn:
            await outbox.notify_due(conn)
        next_at = started + len(created) / per_second
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def drain(pool: asyncpg.Pool, task_ids: list[UUID], fleet: Fleet) -> float:
    """Wait until every task is final and its outbox rows are published; seconds it took."""
    started = time.monotonic()
    while True:
        fleet.check_alive()
        async with pool.acquire() as conn:
            open_tasks = await conn.fetchval(
                "SELECT count(*) FROM tasks WHERE id = ANY($1) AND status <> ALL($2)", task_ids, list(FINAL))
            unpublished = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE task_id = ANY($1) AND published_at IS NULL", task_ids)
        if open_tasks == 0 and unpublished == 0:
            return time.monotonic() - started
        if time.monotonic() - started > DRAIN_DEADLINE_SECONDS:
            return time.monotonic() - started  # the invariants then say which tasks are stuck
        await asyncio.sleep(0.25)


def handler_runs(runs_file: Path) -> Counter:
    if not runs_file.exists():
        return Counter()
    return Counter(UUID(line.split()[0]) for line in runs_file.read_text().splitlines())


async def set_aside_other_tests_work(pool: asyncpg.Pool) -> None:
    """The database is shared by the whole run: what earlier tests left unpublished or PENDING must
    not reach this test's processes (as the `running` fixture does for in-process ones)."""
    async with pool.acquire() as conn:
        await conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
        await conn.execute("UPDATE tasks SET status = 'CANCELLED', finished_at = now(), updated_at = now() "
                           "WHERE status = 'PENDING'")


async def test_killing_workers_and_dispatchers_under_load_loses_nothing(pool, settings, tmp_path):
    await set_aside_other_tests_work(pool)
    rng = random.Random(SEED)
    runs_file = tmp_path / "runs"
    fleet = Fleet(service_env(settings, settings.database_url), tmp_path)
    created: list[UUID] = []
    kills = Counter()
    stop_load = asyncio.Event()
    for slot in ("dispatcher-1", "dispatcher-2", "worker-1", "worker-2"):
        fleet.start(slot)
    try:
        load = asyncio.create_task(create_steadily(pool, rng, runs_file, created, 10, stop_load))
        # A kill every 2.5 s for 30 s, workers twice as often as dispatchers; the replacement
        # starts at once, so the service always has a dispatcher and a worker booting or running.
        for victim in ["worker-1", "dispatcher-1", "worker-2", "worker-1", "dispatcher-2", "worker-2"] * 2:
            await asyncio.sleep(2.5)
            fleet.check_alive()
            fleet.replace(victim)
            kills[victim.split("-")[0]] += 1
        stop_load.set()
        await load
        last_fault = time.monotonic()
        await drain(pool, created, fleet)
        recovered_in = time.monotonic() - last_fault
        async with pool.acquire() as conn:
            problems = await violations(conn, created, handler_runs(runs_file))
            outcomes = dict(await conn.fetch(
                "SELECT status, count(*) FROM tasks WHERE id = ANY($1) GROUP BY status", created))
            rescued = await conn.fetchval(
                "SELECT count(DISTINCT task_id) FROM task_events WHERE task_id = ANY($1) "
                "AND error LIKE 'lease expired: %'", created)
    finally:
        stop_load.set()
        exit_codes = await fleet.stop_all()
    print(f"\nsoak: {len(created)} tasks, {kills['worker']} worker and {kills['dispatcher']} dispatcher "
          f"kills (SIGKILL), {rescued} tasks rescued from a dead worker; drained {recovered_in:.1f}s after "
          f"the last kill; outcomes {outcomes}; {sum(handler_runs(runs_file).values())} handler runs")
    assert problems == {}
    assert set(exit_codes.values()) == {0}, exit_codes  # the survivors still stop cleanly on SIGTERM
    assert len(created) >= 250
    assert rescued > 0  # the kills did hit running attempts: the test exercised the rescue


async def test_database_outage_under_load_loses_nothing(pool, settings, tmp_path):
    await set_aside_other_tests_work(pool)
    rng = random.Random(SEED)
    runs_file = tmp_path / "runs"
    proxy = TcpProxy(*db_host_port(settings.database_url))
    await proxy.start()
    via_proxy = db_url_through(settings.database_url, proxy.port)
    fleet = Fleet(service_env(settings, via_proxy), tmp_path)
    created: list[UUID] = []
    stop_load = asyncio.Event()
    for slot in ("dispatcher-1", "worker-1", "worker-2"):
        fleet.start(slot)
    try:
        # The API side (this test's pool) keeps its own connection: only the service's processes
        # lose the database, while tasks keep arriving.
        load = asyncio.create_task(create_steadily(pool, rng, runs_file, created, 10, stop_load))
        await asyncio.sleep(3)
        # Attempts certain to be running at the cut: they finish while their worker cannot reach
        # the database, and their leases run out.
        running = [await new_task(pool, f"running-at-cut-{i}", kind="counted",
                                  payload={"runs_file": str(runs_file), "then": "sleep", "seconds": 4})
                   for i in range(4)]
        created.extend(running)
        await wait_for_status(pool, running, "IN_PROGRESS", timeout=30)
        fleet.check_alive()
        proxy.cut()
        await asyncio.sleep(6)  # three times the 2 s lease
        proxy.restore()
        arrived_before = list(created)
        recovered_in = await drain(pool, arrived_before, fleet)  # while new tasks keep arriving
        await asyncio.sleep(max(0.0, 4 - recovered_in))
        stop_load.set()
        await load
        await drain(pool, created, fleet)
        async with pool.acquire() as conn:
            problems = await violations(conn, created, handler_runs(runs_file))
            outcomes = dict(await conn.fetch(
                "SELECT status, count(*) FROM tasks WHERE id = ANY($1) GROUP BY status", created))
            rescued = await conn.fetchval(
                "SELECT count(DISTINCT task_id) FROM task_events WHERE task_id = ANY($1) "
                "AND error LIKE 'lease expired: %'", created)
    finally:
        stop_load.set()
        exit_codes = await fleet.stop_all()
        await proxy.close()
    print(f"\ndatabase outage: {len(created)} tasks, 6s cut with {len(running)} attempts running, "
          f"{rescued} tasks rescued; the {len(arrived_before)} tasks created until the database came back "
          f"were all final {recovered_in:.1f}s after it did; outcomes {outcomes}")
    assert problems == {}
    assert set(exit_codes.values()) == {0}, exit_codes


def db_host_port(database_url: str) -> tuple[str, int]:
    parts = urlsplit(database_url)
    return parts.hostname or "localhost", parts.port or 5432


def db_url_through(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{port}"))

