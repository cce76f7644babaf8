"""Test fixtures: a fresh, migrated PostgreSQL database and per-run RabbitMQ names.

Defaults work against the machine's services and against `make start`'s stack;
TEST_DATABASE_URL (server only, no database name needed) and TEST_AMQP_URL override them.
"""

import asyncio
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg
import pytest

from taskservice import broker, db
from taskservice.api.app import create_app
from taskservice.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres:postgres@localhost:5432/postgres")
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@localhost:5672/")
RUN_ID = uuid.uuid4().hex[:10]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def dbmate_url(url: str) -> str:
    if "sslmode=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "sslmode=disable"


def dbmate_binary() -> str:
    beside_python = Path(sys.executable).parent / "dbmate"
    found = str(beside_python) if beside_python.exists() else shutil.which("dbmate")
    if not found:
        pytest.exit("dbmate is not installed: run `make test` (it installs the dev dependencies)", 2)
    return found


def run_dbmate(url: str, *args: str) -> None:
    subprocess.run([dbmate_binary(), "--url", dbmate_url(url), "--migrations-dir",
                    str(ROOT / "db/migrations"), "--no-dump-schema", *args],
                   check=True, capture_output=True, text=True)


def require_service(name: str, url: str, how: str) -> None:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "localhost", parts.port), timeout=3).close()
    except OSError as exc:
        pytest.exit(f"{name} is not reachable at {parts.hostname}:{parts.port} ({exc}). {how}", 2)


def pytest_sessionstart(session: pytest.Session) -> None:
    how = ("Start it with `make start` (Docker Compose publishes it on localhost), or point "
           "{var} at a running server.")
    require_service("PostgreSQL", SERVER_URL, how.format(var="TEST_DATABASE_URL"))
    require_service("RabbitMQ", AMQP_URL, how.format(var="TEST_AMQP_URL"))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(SERVER_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url() -> str:
    """A database made for this run, migrated with dbmate, dropped at the end."""
    name = f"taskservice_test_{RUN_ID}"
    url = with_database(SERVER_URL, name)
    run_dbmate(url, "create")
    run_dbmate(url, "up")
    yield url
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def delete_broker_names(settings: Settings) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        dead_exchange, dead_queue = broker.dead_letter_names(settings)
        for queue in (settings.amqp_queue, dead_queue):
            await channel.queue_delete(queue)
        for exchange in (settings.amqp_exchange, dead_exchange):
            await channel.exchange_delete(exchange)


@pytest.fixture
async def settings(database_url: str):
    """Settings for one test: its own exchange and queues, deleted afterwards."""
    name = f"taskservice.test.{RUN_ID}.{uuid.uuid4().hex[:8]}"
    settings = Settings(
        database_url=database_url,
        amqp_url=AMQP_URL,
        db_pool_min=1,
        db_pool_max=10,
        amqp_exchange=name,
        amqp_queue=f"{name}.tasks",
        dispatcher_embedded=False,
        dispatch_poll_seconds=0.2,
        reap_interval_seconds=0.5,
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        shutdown_grace_seconds=1.0,
        worker_id=f"test-worker-{uuid.uuid4().hex[:6]}",
    )
    yield settings
    await delete_broker_names(settings)


@pytest.fixture
async def pool(settings: Settings):
    pool = await db.create_pool(settings)
    yield pool
    await pool.close()


@pytest.fixture
async def client(aiohttp_client, settings: Settings):
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def running(settings: Settings, pool):
    """Start dispatchers and workers (`running(dispatcher.main, **setting_overrides)`) as tasks of the
    test's loop, with the test handlers registered; all must stop cleanly after the test."""
    from tests.execution import start

    # The database is shared by the whole run: outbox rows earlier tests left unpublished
    # (tasks they never meant to run) are set aside, so this test's dispatchers and
    # workers see only its own tasks. Tasks they left PENDING are cancelled: their messages
    # went to queues since deleted, so the lost-message sweeper would re-dispatch them here.
    async with pool.acquire() as conn:
        await conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
        await conn.execute("UPDATE tasks SET status = 'CANCELLED', finished_at = now(), updated_at = now() "
                           "WHERE status = 'PENDING'")
    started = []

    def run(main, **overrides):
        process = start(main, dataclasses.replace(settings, handler_modules=("tests.handlers_for_tests",),
                                                  **overrides))
        started.append(process)
        return process

    yield run
    for process in started:
        await process.shutdown()
