"""The outbox in PostgreSQL: one function per SQL file under sql/outbox/."""

from collections.abc import Sequence

import asyncpg

from taskservice.sql import QUERIES


async def set_up_claim_due(conn: asyncpg.Connection) -> None:
    """Call before claim_due, in its transaction: its plan then holds whatever the statistics say,
    and its commit does not wait for the WAL flush."""
    await conn.execute(QUERIES["outbox/claim_due_setup"])


async def claim_due(conn: asyncpg.Connection, batch_size: int, lease_seconds: float) -> list[asyncpg.Record]:
    """Due rows, leased to the caller for `lease_seconds`; their tasks become PENDING."""
    return await conn.fetch(QUERIES["outbox/claim_due"], batch_size, lease_seconds)


async def mark_published(conn: asyncpg.Connection, outbox_ids: Sequence[int]) -> None:
    await conn.execute(QUERIES["outbox/mark_published"], outbox_ids)


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
