"""End-to-end scenarios (bench/README.md): the API with its embedded dispatcher and one worker,
through RabbitMQ, running the `noop` handler.

- drain: create N tasks through the API as fast as `--connections` clients can and time the
  first POST to the last COMPLETED. Every process runs throughout, as in production, so the
  rate is that of the whole pipeline (create, dispatch, consume, record), not of one stage.
- latency: on the same system, otherwise idle, one task at a time: from the start of its POST
  to the moment the client sees COMPLETED, measured twice: waiting the way a client does
  (`GET /status?since=&wait=` again after each change), then, for comparison, polling the
  task's row (about every millisecond, on a dedicated connection with a prepared statement).
- batch: the drain, with the tasks created through POST /api/v1/tasks/batch (`--batch-size`
  tasks per request from `--batch-connections` clients).
- waits: many concurrent `?wait=` requests, each on its own task, held open while creates are
  measured, then the tasks become due and complete: every one answered, the API's RSS and the
  create rate with and without the waits (see bench_waits).

Each run declares its own exchange and queue names (through AMQP_EXCHANGE / AMQP_QUEUE) and
deletes them, and their dead-letter twins, at the end. Each scenario starts from empty task
tables. Where the time goes comes from the task_events history, whose rows carry the
clock_timestamp() of each status change: NEW (inserted) → PENDING (the dispatcher leased the
outbox row; it publishes once that commits) → IN_PROGRESS (a worker claimed it) → COMPLETED.
The bench and PostgreSQL share this machine's clock.
"""

import argparse
import asyncio
import gc
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import aio_pika
import aiohttp
import asyncpg
import orjson
from yarl import URL

from bench import cpu, database, load, profile
from bench.server import Server, Worker, running_api, running_worker

DRAIN_TARGET = {"min_rps": 1500}
BATCH_TARGET = {"min_rps": 5000}
LATENCY_TARGET = {"max_p50_ms": 20}
WAIT_LATENCY_TARGET = {"max_p50_ms": 7, "max_p99_ms": 12}
WAITS_TARGET = {"max_create_slowdown": 0.10}
PRIORITIES = ("LOW", "MEDIUM", "HIGH")
DRAIN_POLL_SECONDS = 0.1
LATENCY_POLL_SECONDS = 0.001
UNFINISHED = ("NEW", "PENDING", "IN_PROGRESS")

# Each task's stages from its history; the same query serves both scenarios.
STAGES_SQL = """
    SELECT task_id,
           extract(epoch FROM min(created_at) FILTER (WHERE status = 'NEW')) AS created,
           extract(epoch FROM min(created_at) FILTER (WHERE status = 'PENDING')) AS dispatched,
           extract(epoch FROM min(created_at) FILTER (WHERE status = 'IN_PROGRESS')) AS claimed,
           extract(epoch FROM min(created_at) FILTER (WHERE status = 'COMPLETED')) AS completed
    FROM task_events
    WHERE ($1::uuid[] IS NULL OR task_id = ANY ($1))
    GROUP BY task_id
    HAVING min(created_at) FILTER (WHERE status = 'NEW') >= to_timestamp($2)"""
# (name, from, to) over STAGES_SQL's columns. A task handed over to its API's dispatcher
# (taskservice.handoff) and claimed before the confirm's PENDING mark has its PENDING recorded by
# the claim: its first stage then spans the publish and the claim, and its second is 0.
STAGES = (
    ("outbox wait (NEW→PENDING, handed over: →claim)", "created", "dispatched"),
    ("publish, deliver, claim (PENDING→IN_PROGRESS)", "dispatched", "claimed"),
    ("run and record (IN_PROGRESS→COMPLETED)", "claimed", "completed"),
)


@dataclass(frozen=True)
class Broker:
    """This run's own names on the RabbitMQ server."""
    url: str
    exchange: str
    queue: str

    @property
    def env(self) -> dict[str, str]:
        return {"AMQP_URL": self.url, "AMQP_EXCHANGE": self.exchange, "AMQP_QUEUE": self.queue}

    @property
    def queues(self) -> tuple[str, str]:
        return self.queue, f"{self.queue}.dead"

    @property
    def exchanges(self) -> tuple[str, str]:
        return self.exchange, f"{self.exchange}.dead"


def unique_broker(url: str) -> Broker:
    tag = f"bench-{os.getpid()}-{int(time.time())}"
    return Broker(url=url, exchange=tag, queue=f"{tag}.tasks")


async def consuming(broker: Broker) -> bool:
    """Whether the run's queue exists and has a consumer (the worker is ready)."""
    try:
        connection = await aio_pika.connect(broker.url, timeout=5)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError):
        return False
    async with connection:
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(broker.queue, passive=True)
        except aio_pika.exceptions.AMQPError:
            return False  # not declared yet
        return queue.declaration_result.consumer_count > 0


async def delete_topology(broker: Broker) -> dict[str, int | None]:
    """Delete the run's queues and exchanges; the messages each queue still held."""
    left: dict[str, int | None] = {}
    connection = await aio_pika.connect(broker.url, timeout=10)
    async with connection:
        for name in broker.queues:
            channel = await connection.channel()
            try:
                left[name] = (await channel.declare_queue(name, passive=True)).declaration_result.message_count
                await channel.queue_delete(name)
            except aio_pika.exceptions.AMQPError:
                left[name] = None  # never declared
        for name in broker.exchanges:
            channel = await connection.channel()
            with suppress(aio_pika.exceptions.AMQPError):
                await channel.exchange_delete(name)
    return left


async def connect(url: str) -> asyncpg.Connection:
    """A bench connection (its application_name keeps it out of the wait-event samples)."""
    return await asyncpg.connect(url, server_settings={"application_name": database.BENCH_APPLICATION})


async def status_counts(conn: asyncpg.Connection, baseline: dict[str, int] | None = None) -> dict[str, int]:
    """Tasks per status, less `baseline` (those there before). Each scenario starts from empty
    tables and only its warm-up runs before it, so the rest are its own. Read from the
    trigger-kept counters: a count of the tasks themselves, ten times a second, costs
    PostgreSQL more CPU as the table grows than the pipeline's own reads."""
    counts = {row["status"]: row["n"] for row in await conn.fetch(
        "SELECT status, sum(n)::bigint AS n FROM task_counts GROUP BY status")}
    return {status: n - (baseline or {}).get(status, 0) for status, n in counts.items()}


def create_item(tag: str, n: int) -> dict[str, str]:
    return {"name": f"{tag} {n}", "kind": "noop", "priority": PRIORITIES[n % 3]}


def create_body(tag: str, n: int) -> bytes:
    return orjson.dumps(create_item(tag, n))


def batch_body(tag: str, n: int, size: int) -> bytes:
    return orjson.dumps({"tasks": [create_item(tag, n * size + i) for i in range(size)]})


async def push_through(server: Server, conn: asyncpg.Connection, *, total: int, connections: int,
                       timeout: float, tag: str, batch_size: int = 0) -> dict[str, Any]:
    """POST `total` noop tasks over `connections` clients (one per request, or `batch_size` per
    batch create), polling the database every DRAIN_POLL_SECONDS until every created task is
    COMPLETED (or `timeout` passes)."""
    if batch_size:
        url = URL(f"{server.base_url}/api/v1/tasks/batch", encoded=True)
        requests, per_request = -(-total // batch_size), batch_size

        def next_request(n: int) -> load.Request:
            return "POST", url, batch_body(tag, n, batch_size)
    else:
        url = URL(f"{server.base_url}/api/v1/tasks/", encoded=True)
        requests, per_request = total, 1

        def next_request(n: int) -> load.Request:
            return "POST", url, create_body(tag, n)
    timeline: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    done = False
    baseline = await status_counts(conn)
    async with load.open_session(connections) as session:
        started_wall, clock = time.time(), time.perf_counter()
        creating = asyncio.ensure_future(load.run_load(
            session, next_request, connections=connections, total=requests, expect_status=201))
        try:
            while not done:
                await asyncio.sleep(DRAIN_POLL_SECONDS)
                counts = await status_counts(conn, baseline)
                elapsed = time.perf_counter() - clock
                timeline.append({"t": round(elapsed, 3), **counts})
                if counts.get("FAILED") or counts.get("CANCELLED"):
                    break  # never all COMPLETED
                if creating.done():
                    done = counts.get("COMPLETED", 0) >= creating.result()["requests"] * per_request
                if elapsed > timeout:
                    break
        finally:
            if not creating.done():
                creating.cancel()
        create = await creating if not creating.cancelled() else None
    return {"started_wall": started_wall, "polled_s": round(time.perf_counter() - clock, 3),
            "done": done, "create": create, "counts": counts, "timeline": timeline}


async def warm_up(server: Server, url: str, args: argparse.Namespace) -> None:
    """A few tasks through the whole pipeline: the dispatcher is connected (the API's /ready
    does not say), pools and prepared statements are warm."""
    conn = await connect(url)
    try:
        run = await push_through(server, conn, total=args.e2e_warmup, connections=8, timeout=60,
                                 tag="warm-up")
    finally:
        await conn.close()
    if not run["done"]:
        raise RuntimeError(f"warm-up tasks did not all complete within 60 s: {run['counts']}; "
                           f"see {server.log_path}")


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": round(load.percentile(ordered, 50), 2), "p99_ms": round(load.percentile(ordered, 99), 2),
            "mean_ms": round(sum(ordered) / len(ordered), 2) if ordered else 0.0}


async def stage_times(conn: asyncpg.Connection, since: float) -> dict[str, dict]:
    """p50/p99/mean milliseconds of each stage (and of NEW→COMPLETED) over the history of
    the tasks created since `since` (epoch seconds)."""
    rows = [row for row in await conn.fetch(STAGES_SQL, None, since) if row["completed"] is not None]
    stages = {name: percentiles([(float(row[end]) - float(row[start])) * 1000 for row in rows
                                 if row[start] is not None and row[end] is not None])
              for name, start, end in STAGES}
    stages["total (NEW→COMPLETED)"] = percentiles(
        [(float(row["completed"]) - float(row["created"])) * 1000 for row in rows])
    return stages


def pipeline_processes(server: Server, worker: Worker) -> dict[str, int]:
    processes = {"server": server.pid, "worker": worker.pid}
    rabbitmq = cpu.find_process("beam.smp")
    if rabbitmq is not None:
        processes["rabbitmq"] = rabbitmq
    return processes


async def backend_owners(conn: asyncpg.Connection, processes: dict[str, int]) -> dict[int, str]:
    """Which client each backend of the bench database serves (matched by the client's TCP
    port), so PostgreSQL's CPU splits into the API's, the worker's and the bench's own."""
    ports = {name: cpu.client_ports(processes[name]) for name in ("server", "worker")}
    owners = {}
    for row in await conn.fetch("""
            SELECT pid, client_port, application_name FROM pg_stat_activity
            WHERE datname = current_database() AND backend_type = 'client backend'"""):
        if row["application_name"] == database.BENCH_APPLICATION:
            owners[row["pid"]] = "bench"
        else:
            owners[row["pid"]] = next((name for name, found in ports.items() if row["client_port"] in found),
                                      "unknown")
    return owners


def cpu_per_task(usage: dict[str, Any] | None, before: dict | None, after: dict | None,
                 tasks: int) -> dict[str, float]:
    """CPU milliseconds per task of each part: steadier than rates on a shared machine, and
    what a change to one part's work shows up in."""
    if not usage or not tasks:
        return {}
    window = after["wall"] - before["wall"]
    return {key: round(value / 100 * window * 1000 / tasks, 3) for key, value in usage.items()
            if key not in ("machine_capacity", "others", "other_postgres")}


def format_postgres_split(usage: dict[str, Any] | None) -> str:
    if not usage:
        return "n/a"
    return ", ".join(f"{key.split('.', 1)[1]} {value:.0f}%" for key, value in
                     sorted(usage.items(), key=lambda item: -item[1]) if key.startswith("postgres."))


async def bench_drain(server: Server, worker: Worker, args: argparse.Namespace, url: str,
                      results_dir: Path, batch_size: int = 0) -> dict[str, Any]:
    """The drain; with `batch_size`, the batch scenario (the same, created by batch creates)."""
    total = args.batch_tasks if batch_size else args.drain_tasks
    connections = args.batch_connections if batch_size else args.connections
    processes = pipeline_processes(server, worker)
    conn = await connect(url)
    stop_sampling = asyncio.Event()
    by_query: Counter = Counter()
    waits = asyncio.ensure_future(database.sample_wait_events(url, until=stop_sampling, by_query=by_query))
    profiles = await profile.start(args.py_spy, processes, results_dir, f"w{worker.concurrency}")
    try:
        await asyncio.sleep(database.STATS_FLUSH_SECONDS)  # the warm-up's counters, out of the way
        activity = await database.activity_snapshot(conn)
        owners = await backend_owners(conn, processes)
        before = cpu.snapshot(processes, args.database, owners)
        wal_start = await database.wal_position(conn)
        lsn_start = await database.wal_lsn(conn)
        run = await push_through(server, conn, total=total, connections=connections,
                                 timeout=args.drain_timeout, tag="batch" if batch_size else "drain",
                                 batch_size=batch_size)
        wal_bytes = await database.wal_position(conn) - wal_start
        lsn_end = await database.wal_lsn(conn)
        after = cpu.snapshot(processes, args.database, owners)
        stop_sampling.set()
        hot_spots = await profile.stop(profiles)
        last = await conn.fetchrow("""
            SELECT count(*) AS completed, extract(epoch FROM max(finished_at)) AS last_finished
            FROM tasks WHERE status = 'COMPLETED' AND created_at >= to_timestamp($1)""",
                                   run["started_wall"])
        stages = await stage_times(conn, run["started_wall"])
        await asyncio.sleep(database.STATS_FLUSH_SECONDS)
        activity = database.activity_per(activity, await database.activity_snapshot(conn), last["completed"])
        indexes = await database.index_counts(conn)
        own_wal = await database.database_wal(conn, lsn_start, lsn_end, last["completed"])
    finally:
        stop_sampling.set()
        await profile.stop(profiles)
        wait_shares = await waits
        await conn.close()
    create = run["create"] or load.summarize([], 0, {})
    completed = last["completed"]
    # First POST to the last COMPLETED by the database's own timestamps; the polling that
    # noticed it runs up to DRAIN_POLL_SECONDS behind.
    seconds = (float(last["last_finished"]) - run["started_wall"]) if completed else run["polled_s"]
    created = create["requests"] * (batch_size or 1)
    unfinished = created - completed
    usage = cpu.usage(before, after)
    result = {
        "scenario": (f"batch {total:,} noop in {batch_size}s, worker x{worker.concurrency}" if batch_size
                     else f"drain {total:,} noop, worker x{worker.concurrency}"),
        "connections": f"{connections} w{worker.concurrency}",
        "worker_concurrency": worker.concurrency,
        "worker_pool": worker_pool(args, worker.concurrency),
        "tasks": created,
        "completed": completed,
        "finished": run["done"],
        "errors": create["errors"] + max(0, unfinished),
        "error_kinds": {**create["error_kinds"], **({"not COMPLETED": unfinished} if unfinished else {})},
        "seconds": round(seconds, 3),
        "polled_seconds": run["polled_s"],
        "rps": round(completed / seconds, 1) if seconds > 0 else 0.0,
        # The row's latency columns: each task's NEW→COMPLETED (its wait in the pipeline).
        "p50_ms": stages["total (NEW→COMPLETED)"]["p50_ms"],
        "p99_ms": stages["total (NEW→COMPLETED)"]["p99_ms"],
        "create": {k: create[k] for k in ("requests", "errors", "seconds", "rps", "p50_ms", "p99_ms")},
        "stages": stages,
        "backlog_peak": {status: max((point.get(status, 0) for point in run["timeline"]), default=0)
                         for status in UNFINISHED},
        "timeline": run["timeline"],
        "cpu": usage,
        "cpu_ms_per_task": cpu_per_task(usage, before, after, completed),
        "db_waits": wait_shares,
        "db_waits_by_query": {key: round(n / sum(by_query.values()), 3)
                              for key, n in by_query.most_common(12)},
        "db_per_task": activity,
        "write_cost_per_task": database.write_cost(activity, indexes,
                                                   wal_bytes / completed if completed else None, own_wal),
        "target": BATCH_TARGET if batch_size else DRAIN_TARGET,
    }
    if batch_size:
        result["batch_size"] = batch_size
    if hot_spots:
        result["profile"] = hot_spots
    return result


async def completed_by_polling(status_of: asyncpg.prepared_stmt.PreparedStatement, task_id: UUID,
                               clock: float) -> int:
    """Poll the task's row about every millisecond until it is COMPLETED; the polls it took."""
    polls = 0
    while (status := await status_of.fetchval(task_id)) != "COMPLETED":
        polls += 1
        if status in ("FAILED", "CANCELLED") or time.perf_counter() - clock > 30:
            raise RuntimeError(f"latency: task {task_id} is {status} after {time.perf_counter() - clock:.1f} s")
        await asyncio.sleep(LATENCY_POLL_SECONDS)
    return polls


async def completed_by_waiting(session: aiohttp.ClientSession, base_url: str, task_id: UUID,
                               since: str = "NEW", wait: float = 30) -> int:
    """Follow the task with `GET /status?since=&wait=` until COMPLETED, as a client waits; the
    requests it took (a request that timed out unchanged counts too)."""
    status_url = URL(f"{base_url}/api/v1/tasks/{task_id}/status", encoded=True)
    requests = 0
    while since != "COMPLETED":
        requests += 1
        async with session.get(status_url, params={"since": since, "wait": str(wait)}) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"wait: GET status answered {resp.status}: {body[:200]!r}")
        since = orjson.loads(body)["status"]
        if since in ("FAILED", "CANCELLED"):
            raise RuntimeError(f"wait: task {task_id} is {since}")
    return requests


async def bench_latency(server: Server, worker: Worker, args: argparse.Namespace, url: str,
                        how: str) -> dict[str, Any]:
    """One task at a time: POST, then until COMPLETED either `?wait=` (how="wait", the way a
    client waits) or polling the row from the bench's own connection (how="poll")."""
    processes = pipeline_processes(server, worker)
    conn = await connect(url)
    status_of = await conn.prepare("SELECT status FROM tasks WHERE id = $1")
    post_url = URL(f"{server.base_url}/api/v1/tasks/", encoded=True)
    samples: list[dict[str, Any]] = []
    before = None
    owners = await backend_owners(conn, processes)
    try:
        async with load.open_session(1) as session:
            for n in range(args.latency_warmup + args.latency_tasks):
                await asyncio.sleep(args.latency_gap)  # idle between tasks
                if n == args.latency_warmup:
                    before = cpu.snapshot(processes, args.database, owners)
                started_wall, clock = time.time(), time.perf_counter()
                async with session.post(post_url, data=create_body("latency", n),
                                        headers=load.JSON_HEADERS) as resp:
                    await resp.read()
                    if resp.status != 201:
                        raise RuntimeError(f"latency: POST answered {resp.status}")
                    task_id = UUID(resp.headers["Location"].rsplit("/", 1)[1])
                answered = time.perf_counter()
                if how == "wait":
                    requests = await completed_by_waiting(session, server.base_url, task_id)
                else:
                    requests = await completed_by_polling(status_of, task_id, clock)
                seen = time.perf_counter()
                if n >= args.latency_warmup:
                    samples.append({"id": task_id, "started_wall": started_wall,
                                    "post_ms": (answered - clock) * 1000, "seen_ms": (seen - clock) * 1000,
                                    "requests": requests})
        after = cpu.snapshot(processes, args.database, owners)
        history = {row["task_id"]: row
                   for row in await conn.fetch(STAGES_SQL, [s["id"] for s in samples], 0)}
    finally:
        await conn.close()
    # Where each task's time went, from the POST's start (bench clock) through its history
    # (database clock) to the answer or poll that saw it COMPLETED.
    seen_by = "answered by ?wait=" if how == "wait" else "seen by polling"
    parts: dict[str, list[float]] = {"POST answered": [s["post_ms"] for s in samples],
                                     "POST start → inserted (NEW)": []}
    parts.update({name: [] for name, _, _ in STAGES})
    parts[f"COMPLETED (db clock) → {seen_by}"] = []
    parts["POST start → COMPLETED (db clock)"] = []
    for sample in samples:
        row = history.get(sample["id"])
        if row is None or None in (row["created"], row["dispatched"], row["claimed"], row["completed"]):
            continue
        start = sample["started_wall"]
        parts["POST start → inserted (NEW)"].append((float(row["created"]) - start) * 1000)
        for name, begin, end in STAGES:
            parts[name].append((float(row[end]) - float(row[begin])) * 1000)
        parts[f"COMPLETED (db clock) → {seen_by}"].append(
            sample["seen_ms"] - (float(row["completed"]) - start) * 1000)
        parts["POST start → COMPLETED (db clock)"].append((float(row["completed"]) - start) * 1000)
    seen = [s["seen_ms"] / 1000 for s in samples]
    summary = load.summarize(seen, sum(seen), {})
    return {
        "scenario": f"idle latency POST→COMPLETED ({'?wait=' if how == 'wait' else 'polling'})",
        "connections": f"1 w{worker.concurrency}",
        "worker_concurrency": worker.concurrency,
        **summary,
        "rps": summary["rps"],  # tasks/s one after another (1 / mean latency)
        "requests_per_task": round(sum(s["requests"] for s in samples) / len(samples), 1) if samples else 0,
        "breakdown": {name: percentiles(values) for name, values in parts.items()},
        "cpu": cpu.usage(before, after),
        "db_waits": {},
        "target": WAIT_LATENCY_TARGET if how == "wait" else LATENCY_TARGET,
    }


def rss_mb(pid: int) -> float | None:
    """Resident memory of process `pid` in MiB (None where /proc does not say)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


# Autovacuum and autoanalyze runs so far on the task tables (counted when they finish), plus
# those running on this database now.
AUTOVACUUM_SQL = """
    SELECT (SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0)::int
            FROM pg_stat_user_tables WHERE relname IN ('tasks', 'task_events', 'outbox'))
         + (SELECT count(*)::int FROM pg_stat_activity
            WHERE backend_type = 'autovacuum worker' AND datname = current_database())"""


async def measure_creates(server: Server, worker: Worker, args: argparse.Namespace,
                          conn: asyncpg.Connection) -> dict[str, Any]:
    """Noop creates over `--connections` clients for `--waits-create-seconds` (they run through
    the pipeline, as in production), with the CPU each part used per create meanwhile and the
    autovacuum runs on the task tables that ended meanwhile, or were running at the end (a run
    competes for the CPU)."""
    post_url = URL(f"{server.base_url}/api/v1/tasks/", encoded=True)
    processes = pipeline_processes(server, worker)
    autovacuums = await conn.fetchval(AUTOVACUUM_SQL)
    async with load.open_session(args.connections) as session:
        before = cpu.snapshot(processes, args.database)
        result = await load.run_load(session, lambda n: ("POST", post_url, create_body("waits-create", n)),
                                     connections=args.connections, seconds=args.waits_create_seconds,
                                     expect_status=201)
        after = cpu.snapshot(processes, args.database)
    await asyncio.sleep(database.STATS_FLUSH_SECONDS / 10)  # (an autovacuum worker reports as it ends)
    usage = cpu.usage(before, after)
    return {**result, "cpu": usage, "cpu_ms_per_create": cpu_per_task(usage, before, after, result["requests"]),
            "autovacuums": await conn.fetchval(AUTOVACUUM_SQL) - autovacuums}


async def bench_waits(server: Server, worker: Worker, args: argparse.Namespace, url: str) -> dict[str, Any]:
    """`--waits` tasks scheduled an hour ahead (NEW, not due), each followed by its own client
    with `?wait=` until COMPLETED, all at once. Creates are measured before the waits open and
    while they are open, with the API's RSS beside them; then the bench makes the tasks due (their
    outbox rows' available_at, as if their run_at had come), times every answer against the
    task's COMPLETED in its history, and measures creates once more with no wait open."""
    count = args.waits
    post_url = URL(f"{server.base_url}/api/v1/tasks/", encoded=True)
    run_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    rss = {"idle": rss_mb(server.pid)}
    conn = await connect(url)
    try:
        creates_before = await measure_creates(server, worker, args, conn)
    finally:
        await conn.close()
    rss["after the creates, no waits"] = rss_mb(server.pid)
    ids: list[UUID] = []
    async with load.open_session(args.connections) as session:
        await load.run_load(
            session, lambda n: ("POST", post_url, orjson.dumps({"name": f"waited {n}", "kind": "noop",
                                                                "run_at": run_at})),
            connections=args.connections, total=count, expect_status=201,
            on_response=lambda resp: ids.append(UUID(resp.headers["Location"].rsplit("/", 1)[1])))
    if len(ids) != count:
        raise RuntimeError(f"waits: created {len(ids)} of {count} tasks")
    rss["tasks created, no waits"] = rss_mb(server.pid)

    sent, all_sent = 0, asyncio.Event()

    async def on_sent(*_) -> None:
        nonlocal sent
        sent += 1
        if sent >= count:
            all_sent.set()

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_sent)
    answered_at: dict[UUID, float] = {}

    async def follow(session: aiohttp.ClientSession, task_id: UUID) -> int:
        requests = await completed_by_waiting(session, server.base_url, task_id, wait=60)
        answered_at[task_id] = time.time()
        return requests

    conn = await connect(url)
    try:
        # One connection per waiting client, as thousands of separate clients would hold.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=None),
                                         trace_configs=[trace]) as session:
            followers = [asyncio.ensure_future(follow(session, task_id)) for task_id in ids]
            try:
                async with asyncio.timeout(120):
                    await all_sent.wait()
                await asyncio.sleep(1.0)  # the last requests read and registered
                early = len(answered_at)
                rss["waits open"] = rss_mb(server.pid)
                # The waiting clients live in this process too: out of its collector, whose full
                # collections (up to 100 ms) would stall the creates it measures, not the API.
                gc.freeze()
                try:
                    creates_during = await measure_creates(server, worker, args, conn)
                finally:
                    gc.unfreeze()
                rss["waits open, after the creates"] = rss_mb(server.pid)
                clock = time.perf_counter()
                await conn.execute("UPDATE outbox SET available_at = now() "
                                   "WHERE task_id = ANY($1) AND published_at IS NULL", ids)
                await conn.execute("SELECT pg_notify('outbox_due', '')")
                await asyncio.wait(followers, timeout=args.waits_timeout)
                all_answered_s = time.perf_counter() - clock
            finally:
                for follower in followers:
                    follower.cancel()
        rss["all answered"] = rss_mb(server.pid)
        # Measured again once no wait is open and the API's event feed has stopped (its row lingers
        # after the last wait): the tables grow between the phases and autovacuum may be off, so
        # a later phase runs on a slower table; the waits' phase is compared with the mean of the
        # phases before and after it, which brackets it.
        async with asyncio.timeout(60):
            while await conn.fetchval("SELECT count(*) FROM stream_listeners WHERE expires_at > now()"):
                await asyncio.sleep(0.5)
        creates_after = await measure_creates(server, worker, args, conn)
        completed = {row["task_id"]: float(row["completed"])
                     for row in await conn.fetch(STAGES_SQL, ids, 0) if row["completed"] is not None}
    finally:
        await conn.close()
    errors = Counter("unanswered" if follower.cancelled() else type(follower.exception()).__name__
                     for follower in followers if follower.cancelled() or follower.exception())
    delays = [answered_at[task_id] - completed[task_id] for task_id in answered_at if task_id in completed]
    summary = load.summarize(delays, all_answered_s, errors)
    without = (creates_before["rps"] + creates_after["rps"]) / 2
    slowdown = (1 - creates_during["rps"] / without) if without else None
    all_ok = not errors and len(answered_at) == count and early == 0
    return {
        "scenario": f"waits: {count:,} open, then completed",
        "connections": count,
        **summary,
        # req/s: answers per second from the tasks becoming due to the last answer;
        # p50/p99: each task's COMPLETED (db clock) → its client answered
        "answered": len(answered_at),
        "answered_before_due": early,
        "requests_per_task": round(sum(follower.result() for follower in followers
                                       if not follower.cancelled() and not follower.exception()) / count, 2),
        "rss_mib": rss,
        "creates_without_waits": {k: creates_before[k] for k in ("rps", "p50_ms", "p99_ms", "errors")},
        "creates_with_waits_open": {k: creates_during[k] for k in ("rps", "p50_ms", "p99_ms", "errors")},
        "creates_after_the_waits": {k: creates_after[k] for k in ("rps", "p50_ms", "p99_ms", "errors")},
        "create_cpu": {"without_waits": creates_before["cpu"], "with_waits_open": creates_during["cpu"],
                       "after_the_waits": creates_after["cpu"]},
        "create_cpu_ms": {"without_waits": creates_before["cpu_ms_per_create"],
                          "with_waits_open": creates_during["cpu_ms_per_create"],
                          "after_the_waits": creates_after["cpu_ms_per_create"]},
        "create_autovacuums": {"without_waits": creates_before["autovacuums"],
                               "with_waits_open": creates_during["autovacuums"],
                               "after_the_waits": creates_after["autovacuums"]},
        "create_slowdown": round(slowdown, 3) if slowdown is not None else None,
        "cpu": None,
        "db_waits": {},
        "target": WAITS_TARGET,
        "target_text": f"all answered; creates slow <= {WAITS_TARGET['max_create_slowdown']:.0%}",
        "met": all_ok and slowdown is not None and slowdown <= WAITS_TARGET["max_create_slowdown"],
    }


def worker_pool(args: argparse.Namespace, concurrency: int) -> int:
    return args.worker_pool_max or min(concurrency, 100)


@asynccontextmanager
async def pipeline(url: str, broker: Broker, concurrency: int, args: argparse.Namespace,
                   results_dir: Path, name: str, api_env: dict[str, str] | None = None,
                   ) -> AsyncIterator[tuple[Server, Worker]]:
    """Empty task tables (emptied while nothing runs: a TRUNCATE beside a running dispatcher
    can deadlock with it), then the API with its embedded dispatcher and a worker, warmed up,
    and the earlier scenarios' writes checkpointed, so that no checkpoint of theirs lands in it."""
    await database.empty_tasks(url)
    pool = worker_pool(args, concurrency)
    async with (
        running_api(url, pool_max=args.pool_max, log_path=results_dir / f"e2e-api-{name}.log",
                    env={"DISPATCHER_EMBEDDED": "true", **broker.env, **(api_env or {})}) as server,
        running_worker(url, concurrency=concurrency, pool_max=pool,
                       log_path=results_dir / f"e2e-worker-{name}.log", env=broker.env,
                       ready=lambda: consuming(broker)) as worker,
    ):
        print(f"bench: API with the embedded dispatcher at {server.base_url} (pid {server.pid}), "
              f"worker pid {worker.pid} (concurrency {concurrency}, pool {pool}); "
              f"exchange {broker.exchange}", flush=True)
        await warm_up(server, url, args)
        await database.checkpoint(url)
        yield server, worker


def format_stages(stages: dict[str, dict]) -> str:
    return "; ".join(f"{name} p50 {value['p50_ms']:.1f} / p99 {value['p99_ms']:.1f}"
                     for name, value in stages.items())


async def run(args: argparse.Namespace, url: str, results_dir: Path, only: set[str],
              format_cpu, format_waits) -> list[dict[str, Any]]:
    """The drain scenario for each worker concurrency, then the batch, latency and waits ones with
    the fastest."""
    broker = unique_broker(args.amqp_url)
    drains: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    try:
        for concurrency in args.worker_concurrency if "drain" in only else ():
            async with pipeline(url, broker, concurrency, args, results_dir,
                                f"drain-w{concurrency}") as (server, worker):
                row = await bench_drain(server, worker, args, url, results_dir)
            drains.append(row)
            create = row["create"]
            print(f"  {row['scenario']}: {row['rps']:,.0f} tasks/s ({row['completed']:,} in "
                  f"{row['seconds']} s, {row['errors']} errors); creates {create['rps']:,.0f} req/s "
                  f"for {create['seconds']} s (p50 {create['p50_ms']} ms, p99 {create['p99_ms']} ms); "
                  f"backlog peak {row['backlog_peak']}; cpu {format_cpu(row['cpu'])}; "
                  f"db {format_waits(row['db_waits'])}", flush=True)
            print(f"    postgres cpu by client: {format_postgres_split(row['cpu'])}", flush=True)
            print("    cpu ms per task: " + ", ".join(f"{key} {value:.2f}" for key, value in
                                                       row["cpu_ms_per_task"].items()), flush=True)
            print(f"    {format_stages(row['stages'])}", flush=True)
            print(f"    write cost per task: {database.format_write_cost(row['write_cost_per_task'])}", flush=True)
            for name, spots in row.get("profile", {}).items():
                print(f"    py-spy {name}: {profile.format_top(spots)}", flush=True)
        rows.extend(drains)
        # The latency and waits scenarios run with the fastest drain's worker concurrency.
        best = (max(drains, key=lambda r: r["rps"])["worker_concurrency"] if drains
                else args.worker_concurrency[0])
        if "batch" in only:
            async with pipeline(url, broker, best, args, results_dir, "batch") as (server, worker):
                row = await bench_drain(server, worker, args, url, results_dir, batch_size=args.batch_size)
            rows.append(row)
            create = row["create"]
            print(f"  {row['scenario']}: {row['rps']:,.0f} tasks/s ({row['completed']:,} in "
                  f"{row['seconds']} s, {row['errors']} errors); batch creates {create['rps']:,.1f} req/s "
                  f"(p50 {create['p50_ms']} ms, p99 {create['p99_ms']} ms); backlog peak {row['backlog_peak']}; "
                  f"cpu {format_cpu(row['cpu'])}; db {format_waits(row['db_waits'])}", flush=True)
            print(f"    {format_stages(row['stages'])}", flush=True)
        if "latency" in only:
            async with pipeline(url, broker, best, args, results_dir, "latency") as (server, worker):
                for how in ("wait", "poll"):
                    row = await bench_latency(server, worker, args, url, how)
                    rows.append(row)
                    print(f"  {row['scenario']}: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms over "
                          f"{row['requests']} tasks ({row['requests_per_task']} "
                          f"{'requests' if how == 'wait' else 'polls'} each); cpu {format_cpu(row['cpu'])}",
                          flush=True)
                    print(f"    postgres cpu by client: {format_postgres_split(row['cpu'])}", flush=True)
                    print(f"    {format_stages(row['breakdown'])}", flush=True)
        if "waits" in only:
            # Every wait holds a connection of its own, beside the create clients: past MAX_CONNECTIONS
            # (1,000 by default) the API would answer them 503.
            room = {"MAX_CONNECTIONS": str(args.waits + args.connections + 100)}
            async with pipeline(url, broker, best, args, results_dir, "waits", api_env=room) as (server, worker):
                row = await bench_waits(server, worker, args, url)
            rows.append(row)
            print(f"  {row['scenario']}: {row['answered']:,} of {row['connections']:,} answered "
                  f"({row['errors']} errors, {row['answered_before_due']} before due) in {row['seconds']} s; "
                  f"COMPLETED → answered p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms; "
                  f"{row['requests_per_task']} requests per task", flush=True)
            print(f"    creates without waits {row['creates_without_waits']}, with the waits open "
                  f"{row['creates_with_waits_open']}, after the waits {row['creates_after_the_waits']} "
                  f"(slowdown {row['create_slowdown']}: against the mean of before and after)", flush=True)
            print(f"    API RSS MiB: {row['rss_mib']}", flush=True)
            for phase, spent in row["create_cpu_ms"].items():
                print(f"    cpu ms per create {phase.replace('_', ' ')}: "
                      + ", ".join(f"{key} {value:.2f}" for key, value in spent.items()), flush=True)
            print(f"    cpu during the creates: without waits {format_cpu(row['create_cpu']['without_waits'])}; "
                  f"with the waits open {format_cpu(row['create_cpu']['with_waits_open'])}; "
                  f"after the waits {format_cpu(row['create_cpu']['after_the_waits'])}; autovacuum runs "
                  f"on the task tables that ended meanwhile {row['create_autovacuums']}", flush=True)
    finally:
        # Shielded: an interrupted run still removes its queues and exchanges.
        left = await asyncio.shield(delete_topology(broker))
        if any(left.values()):
            print(f"bench: messages left in the run's queues: {left}", flush=True)
    return rows
