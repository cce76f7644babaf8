"""Paired idle latency: this checkout against another (`python -m bench.paired OTHER_CHECKOUT`).

Two pipelines run at once, each an API with its embedded dispatcher and a worker from its own
checkout, on a database and RabbitMQ names of its own. Tasks go one at a time, alternating
between them, each followed the way a client waits (POST, then `?wait=` until COMPLETED, as the
idle latency row of `make bench`). Both see the same machine from one task to the next, where two
runs of `make bench` minutes apart saw it a third faster or slower: this is how a change to the
idle path is measured back to back (bench/README.md). Prints p50/p90/p99 per checkout, and the
database clock's NEW → IN_PROGRESS → COMPLETED medians.

The pools are smaller than `make bench`'s (two pipelines share PostgreSQL's 100 connections), so
its figures read a little slower than the bench's row; only the difference between the two means
something.
"""

import argparse
import asyncio
import contextlib
import statistics
import time
from pathlib import Path
from uuid import UUID

import aiohttp
import asyncpg
import uvloop
from yarl import URL

from bench import database, e2e, load
from bench.server import ROOT, running_api, running_worker, spawn

POOL = 8  # each API's and each worker's: two pipelines within PostgreSQL's 100 connections
RESULTS_DIR = ROOT / "bench" / "results" / "paired"
STAGES_SQL = """
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY (claimed - created)::float8) * 1000 AS to_claim,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY (completed - claimed)::float8) * 1000 AS to_completed
    FROM (""" + e2e.STAGES_SQL + """) AS stages"""


async def migrated(server_url: str, name: str, root: Path) -> str:
    """A fresh database `name` with the migrations of the checkout at `root`."""
    url = database.with_database(server_url, name)
    conn = await asyncpg.connect(database.with_database(server_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    proc = await spawn(["migrate"], {"DATABASE_URL": url}, RESULTS_DIR / f"{name}-migrate.log", root)
    if await proc.wait() != 0:
        raise RuntimeError(f"migrating {name} from {root} failed: see {RESULTS_DIR}")
    return url


@contextlib.asynccontextmanager
async def pipeline(side: str, root: Path, args: argparse.Namespace):
    url = await migrated(args.server_url, f"taskservice_paired_{side}", root)
    tag = f"paired-{side}-{int(time.time())}"
    broker = e2e.Broker(url=args.amqp_url, exchange=tag, queue=f"{tag}.tasks")
    async with (
        running_api(url, pool_max=POOL, log_path=RESULTS_DIR / f"{side}-api.log", root=root,
                    env={"DISPATCHER_EMBEDDED": "true", **broker.env}) as server,
        running_worker(url, concurrency=16, pool_max=POOL, log_path=RESULTS_DIR / f"{side}-worker.log",
                       env=broker.env, ready=lambda: e2e.consuming(broker), root=root),
    ):
        try:
            yield server, url
        finally:
            await e2e.delete_topology(broker)


async def one_task(session: aiohttp.ClientSession, base_url: str, n: int) -> float:
    """ms from the POST's start until a `?wait=` answers COMPLETED."""
    started = time.perf_counter()
    async with session.post(URL(f"{base_url}/api/v1/tasks/", encoded=True), data=e2e.create_body("paired", n),
                            headers=load.JSON_HEADERS) as resp:
        await resp.read()
        if resp.status != 201:
            raise RuntimeError(f"POST answered {resp.status}")
        task_id = UUID(resp.headers["Location"].rsplit("/", 1)[1])
    await e2e.completed_by_waiting(session, base_url, task_id)
    return (time.perf_counter() - started) * 1000


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    at = lambda q: ordered[min(len(ordered) - 1, int(len(ordered) * q))]  # noqa: E731
    return f"p50 {statistics.median(ordered):.2f}, p90 {at(0.9):.2f}, p99 {at(0.99):.2f} ms"


async def main(args: argparse.Namespace) -> None:
    sides = {"this": ROOT, "other": args.other.resolve()}
    async with contextlib.AsyncExitStack() as stack:
        servers = {side: await stack.enter_async_context(pipeline(side, root, args))
                   for side, root in sides.items()}
        sessions = {side: await stack.enter_async_context(load.open_session(1)) for side in sides}
        latencies: dict[str, list[float]] = {side: [] for side in sides}
        for n in range(args.warmup + args.tasks):
            # Each side goes first in every other round.
            for side in (list(sides) if n % 2 else list(reversed(sides))):
                await asyncio.sleep(args.gap)
                ms = await one_task(sessions[side], servers[side][0].base_url, n)
                if n >= args.warmup:
                    latencies[side].append(ms)
        for side, root in sides.items():
            conn = await asyncpg.connect(servers[side][1])
            try:
                stages = await conn.fetchrow(STAGES_SQL, None, 0)
            finally:
                await conn.close()
            print(f"{side} ({root}): {summary(latencies[side])} over {len(latencies[side])} tasks; "
                  f"database clock NEW→IN_PROGRESS {stages['to_claim']:.2f}, "
                  f"IN_PROGRESS→COMPLETED {stages['to_completed']:.2f} ms", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (a git worktree, say)")
    parser.add_argument("--tasks", type=int, default=400, help="measured tasks per checkout")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured tasks per checkout first")
    parser.add_argument("--gap", type=float, default=0.01, help="idle seconds before each task")
    parser.add_argument("--server-url", default="postgresql://postgres@localhost:5432/postgres")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@localhost:5672/")
    return parser.parse_args()


if __name__ == "__main__":
    uvloop.run(main(parse_args()))
