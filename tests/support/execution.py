"""Helpers for the execution tests: background loops, task creation, waiting, a TCP proxy."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

import aio_pika
import asyncpg

from taskservice import broker, tasks
from taskservice.settings import Settings


@dataclass
class Background:
    """A dispatcher or worker `main(settings, stop)` running as a task of the test's loop."""
    stop: asyncio.Event
    task: asyncio.Task

    async def shutdown(self, timeout: float = 20) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout)


def start(main: Callable[[Settings, asyncio.Event], Awaitable[None]], settings: Settings) -> Background:
    stop = asyncio.Event()
    return Background(stop, asyncio.create_task(main(settings, stop)))


async def new_task(pool: asyncpg.Pool, name: str = "t", *, kind: str = "noop", priority: str = "MEDIUM",
                   payload: dict | None = None, max_attempts: int = 3, timeout_seconds: int = 60,
                   run_at=None) -> UUID:
    async with pool.acquire() as conn:
        row = await tasks.create(conn, name=name, description=None, priority=priority, kind=kind,
                                 payload=payload or {}, max_attempts=max_attempts,
                                 timeout_seconds=timeout_seconds, run_at=run_at)
    return row["id"]


async def wait_for_status(pool: asyncpg.Pool, task_ids, statuses, timeout: float = 15) -> dict:
    """Poll until every task is in one of `statuses`; the rows, or AssertionError with the laggards."""
    ids = list(task_ids)
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)
    deadline = time.monotonic() + timeout
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM tasks WHERE id = ANY($1)", ids)
        by_id = {row["id"]: row for row in rows}
        if len(by_id) == len(ids) and all(row["status"] in wanted for row in rows):
            return by_id
        if time.monotonic() > deadline:
            lagging = {str(r["id"]): r["status"] for r in rows if r["status"] not in wanted}
            raise AssertionError(f"{len(lagging)} tasks not {wanted}: {dict(list(lagging.items())[:5])}")
        await asyncio.sleep(0.05)


async def statuses_seen(pool: asyncpg.Pool, task_id: UUID) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT status FROM task_events WHERE task_id = $1 ORDER BY id", task_id)
    return [row["status"] for row in rows]


async def publish_tasks(settings: Settings, pool: asyncpg.Pool, ids) -> None:
    """Publish these tasks' outbox rows ourselves: the queue then holds exactly them
    (a dispatcher would also publish rows other tests left in the shared database)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, task_id, priority FROM outbox WHERE task_id = ANY($1)", ids)
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        topology = await broker.declare_topology(channel, settings)
        await broker.publish_batch(topology.exchange, settings.amqp_queue, rows)


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` drops every connection and refuses new ones."""
    target_host: str
    target_port: int
    accepting: bool = True
    writers: set = field(default_factory=set)
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def close(self) -> None:
        self.cut()
        self.server.close()

    def cut(self) -> None:
        self.accepting = False
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    def restore(self) -> None:
        self.accepting = True

    async def _accept(self, client_reader, client_writer) -> None:
        if not self.accepting:
            client_writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self.writers.update((client_writer, upstream_writer))
        await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))

    async def _pipe(self, reader, writer) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self.writers.discard(writer)


async def ready_messages(settings: Settings) -> int:
    """Messages ready in the test's task queue, as RabbitMQ counts them."""
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(settings.amqp_queue, passive=True)
        return queue.declaration_result.message_count
