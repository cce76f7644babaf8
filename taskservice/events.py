"""Status-change history (task_events) read as a stream, and the rows that switch its NOTIFY on:
one function per SQL file under sql/events/, each taking a connection."""

from uuid import UUID

import asyncpg

from taskservice.sql import QUERIES


async def announce_listener(conn: asyncpg.Connection, listener: UUID, seconds: float) -> int:
    """Status changes notify for the next `seconds`; the newest event id so far."""
    return await conn.fetchval(QUERIES["events/announce_listener"], listener, seconds)


async def withdraw_listener(conn: asyncpg.Connection, listener: UUID) -> None:
    await conn.execute(QUERIES["events/withdraw_listener"], listener)


async def latest_id(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(QUERIES["events/latest_id"])


async def replay(conn: asyncpg.Connection, after: int, *, task_id: UUID | None, status: str | None,
                 priority: str | None, limit: int) -> list[asyncpg.Record]:
    """Events after id `after` matching the filters, oldest first, at most `limit`."""
    return await conn.fetch(QUERIES["events/replay"], after, task_id, status, priority, limit)


async def throughput(conn: asyncpg.Connection, minutes: int) -> list[asyncpg.Record]:
    """Per-second counts over the last `minutes`, each row carrying the window (see the SQL)."""
    return await conn.fetch(QUERIES["events/throughput"], minutes)
