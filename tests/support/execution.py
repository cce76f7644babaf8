"""Helpers for the execution tests: background loops, task creation, waiting, a TCP proxy."""

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit
from uuid import UUID

import aio_pika
import aiohttp
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
                   run_at=None, queue: str = tasks.DEFAULT_QUEUE) -> UUID:
    async with pool.acquire() as conn:
        row = await tasks.create(conn, name=name, description=None, priority=priority, kind=kind,
                                 payload=payload or {}, max_attempts=max_attempts,
                                 timeout_seconds=timeout_seconds, run_at=run_at, queue=queue)
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


async def until(condition: Callable[[], object], timeout: float = 10) -> None:
    """Until `condition()` is true; TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


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


async def ready_messages(settings: Settings, queue: str = tasks.DEFAULT_QUEUE) -> int:
    """Messages ready in one of the test's task queues, as RabbitMQ counts them."""
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(broker.queue_name(settings, queue), passive=True)
        return queue.declaration_result.message_count


# Closing a connection from RabbitMQ's side, as an operator would: through the management HTTP
# API when the plugin is enabled (the compose stack's image has it), else with rabbitmqctl on a
# broker running on this machine (the CI machine's).
MANAGEMENT_PORT = 15672


def management_session(amqp_url: str) -> tuple[str, aiohttp.ClientSession]:
    """The management API's base URL, and a session logged in with the AMQP URL's user."""
    parts = urlsplit(amqp_url)
    login = aiohttp.encode_basic_auth(parts.username or "guest", parts.password or "guest")
    session = aiohttp.ClientSession(headers={"Authorization": login}, timeout=aiohttp.ClientTimeout(total=5))
    return f"http://{parts.hostname or 'localhost'}:{MANAGEMENT_PORT}/api", session


async def management_connections(amqp_url: str) -> list[dict] | None:
    """The broker's connections as the management API lists them; None when it is not enabled."""
    base, session = management_session(amqp_url)
    try:
        async with session, session.get(f"{base}/connections",
                                        params={"columns": "name,client_properties"}) as response:
            if response.status != 200:
                return None
            return await response.json()
    except (aiohttp.ClientError, TimeoutError):
        return None


async def rabbitmqctl(*args: str) -> str | None:
    """rabbitmqctl's output; None when it is not installed or fails."""
    if shutil.which("rabbitmqctl") is None:
        return None
    process = await asyncio.create_subprocess_exec("rabbitmqctl", "-q", *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(30):
            out, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        return None
    return out.decode() if process.returncode == 0 else None


async def broker_admin(amqp_url: str) -> str | None:
    """How these tests can close a connection from the broker's side: "management", "rabbitmqctl"
    (only for a broker on this machine), or None."""
    if await management_connections(amqp_url) is not None:
        return "management"
    local = urlsplit(amqp_url).hostname in (None, "localhost", "127.0.0.1", "::1")
    if local and await rabbitmqctl("list_connections", "pid") is not None:
        return "rabbitmqctl"
    return None


async def close_broker_connections(amqp_url: str, connection_name: str) -> int:
    """Close, from the broker's side, every connection whose client named it `connection_name`;
    how many there were."""
    reason = "closed by a taskservice test"
    if (listed := await management_connections(amqp_url)) is not None:
        names = [c["name"] for c in listed if (c.get("client_properties") or {}).get("connection_name")
                 == connection_name]
        base, session = management_session(amqp_url)
        async with session:
            for name in names:
                async with session.delete(f"{base}/connections/{quote(name, safe='')}",
                                          headers={"X-Reason": reason}) as response:
                    assert response.status in (200, 204), response.status
        return len(names)
    listed = await rabbitmqctl("list_connections", "pid", "client_properties")
    assert listed is not None, "neither the management API nor rabbitmqctl is available"
    # One line per connection: "<pid>\t[{...},{"connection_name","<name>"},...]".
    marker = f'{{"connection_name","{connection_name}"}}'
    pids = [line.split("\t", 1)[0] for line in listed.splitlines() if marker in line]
    for pid in pids:
        assert await rabbitmqctl("close_connection", pid, reason) is not None, f"could not close {pid}"
    return len(pids)
