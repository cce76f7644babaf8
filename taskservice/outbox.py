"""The outbox in PostgreSQL: one function per SQL file under sql/outbox/."""

from collections.abc import Sequence

import asyncpg

from taskservice.sql import QUERIES

# The session of the connection claim_due runs on (taskservice.dispatcher.claim_pool), one
# statement in its own transaction:
# - index scans only, in a generic plan made once per connection: its batch from outbox_due_idx
#   in order and each task by primary key whatever the statistics say (with other scans allowed,
#   stale statistics of a growing backlog chose a sort of all of it), and the foreign-key checks
#   of the events its trigger inserts by primary key too (a check planned while `tasks` was small
#   would read the whole table for every row). Planning each claim afresh cost 0.35 ms of it;
# - committed without waiting for the WAL flush (it sits between a create and its message). A
#   claim lost in a database crash leaves its rows due and its tasks NEW, so they are published
#   again and the worker skips the duplicates; any later synchronous commit that writes, such as
#   a worker's outcome for one of its tasks, flushes it first.
CLAIM_SESSION = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off",
                 "enable_bitmapscan": "off", "synchronous_commit": "off"}


async def claim_due(conn: asyncpg.Connection, batch_size: int, lease_seconds: float) -> list[asyncpg.Record]:
    """Due rows, leased to the caller for `lease_seconds`; their tasks become PENDING. On a
    connection with CLAIM_SESSION's settings."""
    return await conn.fetch(QUERIES["outbox/claim_due"], batch_size, lease_seconds)


async def mark_published(conn: asyncpg.Connection, outbox_ids: Sequence[int]) -> None:
    await conn.execute(QUERIES["outbox/mark_published"], outbox_ids)


async def mark_handed_off(conn: asyncpg.Connection, outbox_ids: Sequence[int]) -> int:
    """Confirmed handed-over rows (taskservice.handoff): published, and their tasks still NEW
    now PENDING; how many tasks moved. On a connection with CLAIM_SESSION's settings."""
    return len(await conn.fetch(QUERIES["outbox/mark_handed_off"], outbox_ids))


async def record_publish_error(conn: asyncpg.Connection, outbox_ids: Sequence[int], error: str,
                               retry_in_seconds: float) -> None:
    await conn.execute(QUERIES["outbox/record_publish_error"], outbox_ids, error, retry_in_seconds)


async def backlog(conn: asyncpg.Connection) -> asyncpg.Record:
    """Unpublished due rows: `due` (how many) and `oldest_due_age_seconds`."""
    return await conn.fetchrow(QUERIES["outbox/backlog"])


async def notify_due(conn: asyncpg.Connection, sender: str = "") -> None:
    """Wake the dispatchers; call after committing new rows. `sender`: this process's id, if a
    dispatcher runs in it (woken in-process, it skips its own)."""
    await conn.execute(QUERIES["outbox/notify_due"], sender)


async def prune_published(conn: asyncpg.Connection, keep_seconds: float, batch_size: int) -> int:
    """Delete up to `batch_size` rows published more than `keep_seconds` ago; how many."""
    return await conn.fetchval(QUERIES["outbox/prune_published"], keep_seconds, batch_size)
