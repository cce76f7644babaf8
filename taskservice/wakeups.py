"""Wake-ups sent after commits: a NOTIFY in its own tiny statement, coalesced.

A NOTIFY inside a writing transaction takes a database-wide lock at commit and
holds it through the WAL flush, so those commits would go one at a time. So
writers set an asyncio.Event after committing, and one loop per purpose and
process turns it into at most one NOTIFY per WAKEUP_INTERVAL_SECONDS: the
outbox's (`outbox.notify_due`, waking the dispatchers) and the status stream's
(`events.announce`, waking the streaming API processes).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

from taskservice import db
from taskservice.lifecycle import supervised, wait_any, wait_for

WAKEUP_INTERVAL_SECONDS = 0.01

Notify = Callable[[asyncpg.Connection], Awaitable[None]]


async def send_wakeups(pool: asyncpg.Pool, pending: asyncio.Event, notify: Notify, stop: asyncio.Event) -> None:
    """Call `notify` whenever `pending` is set, at most once per WAKEUP_INTERVAL_SECONDS, and
    once more at `stop` if it is set then."""
    while True:
        await wait_any((stop, pending), 5.0)
        if pending.is_set():
            pending.clear()
            try:
                async with pool.acquire() as conn:
                    await notify(conn)
            except db.UNAVAILABLE_ERRORS:
                pass  # the listeners' own fallbacks (polling, reads on reconnect) cover it
        if stop.is_set():
            return
        await wait_for(stop, WAKEUP_INTERVAL_SECONDS)


@contextlib.asynccontextmanager
async def sending(name: str, pool: asyncpg.Pool, notify: Notify) -> AsyncIterator[asyncio.Event]:
    """An Event for writers to set after committing, turned into `notify` calls until the block
    ends (the last one included)."""
    pending, done = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(supervised(name, lambda: send_wakeups(pool, pending, notify, done), done))
    try:
        yield pending
    finally:
        done.set()
        await task
