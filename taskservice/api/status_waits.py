"""Waiting for a task's status to change: `GET /api/v1/tasks/{id}/status?wait=&since=`.

A waiting request is a read: it registers with the process's event feed (event_feed.py), reads
the task's status once, and is woken by the feed when an event for its task arrives. It writes
nothing, takes no lock and holds no pool connection while it waits; thousands of them cost a
small object each in the feed's task id -> waits dict.
"""

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import web

from taskservice import events
from taskservice.api.event_feed import EVENT_FEED, WAIT_LINGER_SECONDS, EventFeed, is_live, until_live


@dataclass(eq=False)
class Waiter:
    """One waiting request: the newest event for its task since it registered, or the status
    its task has for good (`final`: COMPLETED, which no task leaves)."""
    newest: dict[str, Any] | None = None
    final: str | None = None
    arrived: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def offer(self, event: dict[str, Any]) -> None:
        self.newest = event
        self.wake()

    def finish(self, status: str) -> None:
        self.final = status
        self.wake()

    def wake(self) -> None:
        if not self.arrived.done():
            self.arrived.set_result(None)


@contextlib.contextmanager
def waiting(feed: EventFeed, task_id: UUID) -> Iterator[Waiter]:
    key, waiter = str(task_id), Waiter()
    feed.waiters.setdefault(key, set()).add(waiter)
    try:
        yield waiter
    finally:
        waiters = feed.waiters[key]
        waiters.discard(waiter)
        if not waiters:
            del feed.waiters[key]


async def read_position(pool: asyncpg.Pool, task_id: UUID) -> tuple[str | None, int]:
    async with pool.acquire() as conn:
        row = await events.task_position(conn, task_id)
    return (None, 0) if row is None else (row["status"], row["event_id"])


async def wait_for_change(pool: asyncpg.Pool, feed: EventFeed, task_id: UUID, since: str,
                          timeout: float) -> str | None:
    """The task's status once it is no longer `since`, or when `timeout` runs out
    (None: the task is gone)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with waiting(feed, task_id) as waiter:
        # Registered before the read: a change committed after the read is delivered to this
        # waiter, provided the feed was live before the read (else read again once it is).
        live = is_live(feed)
        status, seen = await read_position(pool, task_id)
        if status == since and not live:
            if not await until_live(feed, deadline - loop.time()):
                return status
            status, seen = await read_position(pool, task_id)
        if status != since:
            return status
        while not feed.closing:
            if waiter.final is not None and waiter.final != since:
                status = waiter.final
                break
            event = waiter.newest
            # Events for one task commit in id order (each holds the task's row lock), so an
            # id past the one the read saw is a change after it.
            if event is not None and event["id"] > seen and event["status"] != since:
                status = event["status"]
                break
            try:
                async with asyncio.timeout(deadline - loop.time()):
                    await waiter.arrived
            except TimeoutError:
                break
            waiter.arrived = loop.create_future()
        # Keep the feed's row a little: this client is likely to wait again.
        feed.linger_until = loop.time() + WAIT_LINGER_SECONDS
    return status


async def release_waiters(app: web.Application) -> None:
    """on_shutdown: answer every waiting request now (with the status it last read)."""
    feed = app[EVENT_FEED]
    feed.closing = True
    for waiters in feed.waiters.values():
        for waiter in waiters:
            waiter.wake()
