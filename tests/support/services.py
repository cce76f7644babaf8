"""The PostgreSQL server and RabbitMQ the integration tests use, and the names this run gives them.

Defaults work against the machine's services and against `make start`'s stack;
TEST_DATABASE_URL (server only, no database name needed) and TEST_AMQP_URL override them.
"""

import os
import socket
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest

from taskservice import broker, migrations
from taskservice.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
SERVER_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres:postgres@localhost:5432/postgres")
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@localhost:5672/")
RUN_ID = uuid.uuid4().hex[:10]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def run_dbmate(url: str, *args: str, schema_file: Path | None = None,
               migrations_dir: Path = migrations.MIGRATIONS_DIR) -> str:
    """dbmate as `taskservice migrate` runs it; a failure fails the test with dbmate's own message."""
    try:
        return migrations.run_dbmate(url, *args, schema_file=schema_file, migrations_dir=migrations_dir)
    except FileNotFoundError as exc:
        pytest.exit(f"{exc}: run `make test` (it installs the dev dependencies)", 2)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"dbmate {' '.join(args)} failed:\n{exc.output}", pytrace=False)


def require_service(name: str, url: str, how: str) -> None:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "localhost", parts.port), timeout=3).close()
    except OSError as exc:
        pytest.exit(f"{name} is not reachable at {parts.hostname}:{parts.port} ({exc}). {how}", 2)


def require_services() -> None:
    """Stop the run at once, naming the missing service, instead of a wall of connection errors."""
    how = ("Start it with `make start` (Docker Compose publishes it on localhost), or point "
           "{var} at a running server.")
    require_service("PostgreSQL", SERVER_URL, how.format(var="TEST_DATABASE_URL"))
    require_service("RabbitMQ", AMQP_URL, how.format(var="TEST_AMQP_URL"))


# The named task queues tests route tasks through: their RabbitMQ queues are deleted after each test.
TEST_QUEUES = ("emails", "reports")


async def delete_broker_names(settings: Settings) -> None:
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        dead_exchange, dead_queue = broker.dead_letter_names(settings)
        named = {broker.queue_name(settings, q) for q in (*TEST_QUEUES, *settings.worker_queues)}
        for queue in (settings.amqp_queue, *sorted(named - {settings.amqp_queue}), dead_queue):
            await channel.queue_delete(queue)  # (a no-op for a queue never declared)
        for exchange in (settings.amqp_exchange, dead_exchange):
            await channel.exchange_delete(exchange)
