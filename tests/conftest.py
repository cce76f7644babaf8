"""Fixtures for every test group: a fresh, migrated PostgreSQL database and per-run RabbitMQ names.

They are made only when a test asks for them, so `pytest tests/unit` needs no running service.
"""

import asyncio
import dataclasses
import uuid

import asyncpg
import pytest

from taskservice import db
from taskservice.api.app import create_app
from taskservice.settings import Settings
from tests.support.services import AMQP_URL, RUN_ID, SERVER_URL, delete_broker_names, run_dbmate, with_database


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
    from tests.support.execution import start

    # The database is shared by the whole run: outbox rows earlier tests left unpublished
    # (tasks they never meant to run) are set aside, so this test's dispatchers and
    # workers see only its own tasks. Tasks they left PENDING are cancelled: their messages
    # went to queues since deleted, so the lost-message sweeper would re-dispatch them here.
    async with pool.acquire() as conn:
        await conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
        await conn.execute("UPDATE tasks SET status = 'CANCELLED', finished_at = now(), updated_at = now() "
                           "WHERE status = 'PENDING'")
        # Schedules earlier tests left enabled would fire into this test's dispatchers.
        await conn.execute("UPDATE schedules SET enabled = false, next_run_at = NULL WHERE enabled")
    started = []

    def run(main, **overrides):
        process = start(main, dataclasses.replace(settings, handler_modules=("tests.support.handlers_for_tests",),
                                                  **overrides))
        started.append(process)
        return process

    yield run
    for process in started:
        await process.shutdown()
