"""Status-change history (task_events) read as a stream, the NOTIFY that announces new rows, and
the rows that switch that NOTIFY on: one function per SQL file under sql/events/, each taking a
connection."""

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from taskservice.sql import QUERIES

# A NOTIFY payload must stay under 8000 bytes: this many task ids (33 bytes each) at most.
ANNOUNCED_COMPLETIONS = 200


async def announce(conn: asyncpg.Connection, completed: Sequence[UUID] = (), sender: str = "") -> None:
    """NOTIFY task_events if some stream or wait is open in another process; call after
    committing status changes. `completed`: tasks among them now COMPLETED (named in the
    payload, up to ANNOUNCED_COMPLETIONS). `sender`: this process's id, if it has an event feed
    (its listener id; woken in-process, it needs no notification)."""
    named = ",".join(task_id.hex for task_id in completed[:ANNOUNCED_COMPLETIONS])
    await conn.execute(QUERIES["events/announce"], sender, named)


async def announce_listener(conn: asyncpg.Connection, listener: UUID, seconds: float,
                            window: int) -> asyncpg.Record:
    """Writers announce their changes for the next `seconds`. `latest_id`: the newest event id so
    far; `missing_ids`: the ids among the `window` before it not visible yet (see the SQL)."""
    return await conn.fetchrow(QUERIES["events/announce_listener"], listener, seconds, window)


async def withdraw_listener(conn: asyncpg.Connection, listener: UUID) -> None:
    await conn.execute(QUERIES["events/withdraw_listener"], listener)


async def latest_id(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(QUERIES["events/latest_id"])


async def replay(conn: asyncpg.Connection, after: int, *, task_id: UUID | None, status: str | None,
                 priority: str | None, limit: int, queue: str | None = None) -> list[asyncpg.Record]:
    """Events after id `after` matching the filters, oldest first, at most `limit`."""
    return await conn.fetch(QUERIES["events/replay"], after, task_id, status, priority, limit, queue)


async def read_new(conn: asyncpg.Connection, after: int, gaps: list[int], limit: int,
                   with_tasks: bool = True) -> list[asyncpg.Record]:
    """Events after id `after` or among `gaps`, oldest first, at most `limit`; with their task's
    priority and queue only `with_tasks` (else None)."""
    return await conn.fetch(QUERIES["events/read_new"], after, gaps, limit, with_tasks)


async def task_position(conn: asyncpg.Connection, task_id: UUID) -> asyncpg.Record | None:
    """The task's `status` and the id of its newest event (`event_id`, 0: none) in one snapshot;
    None: no such task."""
    return await conn.fetchrow(QUERIES["events/task_position"], task_id)


async def throughput(conn: asyncpg.Connection, minutes: int) -> list[asyncpg.Record]:
    """Per-second counts over the last `minutes`, each row carrying the window (see the SQL)."""
    return await conn.fetch(QUERIES["events/throughput"], minutes)
