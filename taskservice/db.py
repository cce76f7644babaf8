"""PostgreSQL connections: the pool and the codecs every connection uses."""

import asyncio
import logging
from collections.abc import Callable

import asyncpg
import orjson

from taskservice.lifecycle import wait_any, wait_for
from taskservice.settings import Settings
from taskservice.sql import QUERIES

log = logging.getLogger(__name__)

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


class StatelessConnection(asyncpg.Connection):
    """A pooled connection that skips the session reset on release.

    Our pooled connections never LISTEN, SET, take advisory locks or open
    cursors (LISTEN has its own connection), so asyncpg's default reset query
    would be a wasted round trip on every request. An open transaction is
    still rolled back.
    """

    def get_reset_query(self) -> str:
        return ""


async def create_pool(settings: Settings, **server_settings: str) -> asyncpg.Pool:
    """The service's pool. No JIT: every statement here is short, and a plan whose cost estimate
    crosses jit_above_cost (a search branch that never runs, on 10,000,000 tasks) spent 14 ms
    compiling for 0.5 ms of work."""
    return await asyncpg.create_pool(
        settings.database_url,
        connection_class=StatelessConnection,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        init=init_connection,
        timeout=5,
        command_timeout=30,
        server_settings={"application_name": "taskservice", "jit": "off", **server_settings},
    )


async def ping(conn: asyncpg.Connection, timeout: float | None = None) -> None:
    await conn.fetchval(QUERIES["health/ping"], timeout=timeout)


async def listen(database_url: str, channel: str, on_notify: Callable[[str | None], None],
                 stop: asyncio.Event, ping_seconds: float = 10.0) -> None:
    """Hold a LISTEN on `channel` until `stop`, reconnecting whenever the connection drops.

    LISTEN needs its own connection, outside the pool. NOTIFYs sent while it was
    down are lost, so `on_notify(None)` is called after every (re)connect: the
    caller then catches up by polling once.
    """
    delay = 0.5
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(database_url, timeout=5,
                                         server_settings={"application_name": f"taskservice-{channel}"})
        except UNAVAILABLE_ERRORS as exc:
            log.warning("LISTEN %s: database unreachable (%s); retrying in %.1fs",
                        channel, type(exc).__name__, delay)
            await wait_for(stop, delay)
            delay = min(delay * 2, 10)
            continue
        delay = 0.5
        try:
            await _hold_listen(conn, channel, on_notify, stop, ping_seconds)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("LISTEN %s: connection lost (%s); reconnecting", channel, type(exc).__name__)
        finally:
            conn.terminate()


async def _hold_listen(conn: asyncpg.Connection, channel: str, on_notify: Callable[[str | None], None],
                       stop: asyncio.Event, ping_seconds: float) -> None:
    lost = asyncio.Event()
    conn.add_termination_listener(lambda _conn: lost.set())
    await conn.add_listener(channel, lambda _c, _pid, _ch, payload: on_notify(payload))
    on_notify(None)
    while not stop.is_set() and not lost.is_set():
        # A ping notices a connection that died without closing.
        if not await wait_any((stop, lost), ping_seconds):
            await ping(conn, timeout=5)  # a half-open TCP connection must not hang us
