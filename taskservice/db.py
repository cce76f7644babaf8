"""PostgreSQL connections: the pool and the codecs every connection uses."""

import asyncpg
import orjson

from taskservice.settings import Settings
from taskservice.sql import QUERIES

# Errors that mean "the database is unreachable", not "the query is wrong".
UNAVAILABLE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # shutting down, starting up, connection killed
    asyncpg.TooManyConnectionsError,
)


def _dump_json(value) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb in and out as Python objects, through orjson."""
    await conn.set_type_codec("jsonb", schema="pg_catalog",
                              encoder=_dump_json, decoder=orjson.loads)


async def create_pool(settings: Settings, **server_settings: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        init=init_connection,
        timeout=5,
        command_timeout=30,
        server_settings={"application_name": "taskservice", **server_settings},
    )


async def ping(conn: asyncpg.Connection) -> None:
    await conn.fetchval(QUERIES["health/ping"])
