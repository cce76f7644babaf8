"""Waiting for a task's status to change: `GET /api/v1/tasks/{id}/status?wait=&since=`.

One LISTEN task_status connection per API process feeds a registry of waiting requests
(task id → their events). A status change sends that NOTIFY only while someone watches
the task (tasks.watch_status sets `watched_until`; docs/design.md, Waiting for a status change): a
NOTIFY in every writing transaction would serialise all commits. A waiting request holds
no pool connection.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from aiohttp import web

from taskservice import db, tasks
from taskservice.api.keys import SETTINGS
from taskservice.lifecycle import supervised, wait_for

# The watch outlives the wait a little, so a change at the last moment still notifies.
WATCH_MARGIN_SECONDS = 1.0


@dataclass
class StatusWaiters:
    by_task: dict[UUID, set[asyncio.Event]] = field(default_factory=dict)
    listening: asyncio.Event = field(default_factory=asyncio.Event)  # LISTEN is in place
    closing: bool = False  # the app is shutting down: waits end now


STATUS_WAITERS = web.AppKey("status_waiters", StatusWaiters)


def wake(waiters: StatusWaiters, task_id: UUID | None = None) -> None:
    """Wake the requests waiting for `task_id`, or every waiting request."""
    groups = waiters.by_task.values() if task_id is None else [waiters.by_task.get(task_id, ())]
    for events in groups:
        for event in events:
            event.set()


def on_status_notify(waiters: StatusWaiters, payload: str | None) -> None:
    if payload is None:
        # (Re)connected: notifications sent meanwhile are lost, so everyone reads again.
        waiters.listening.set()
        wake(waiters)
        return
    try:
        task_id = UUID(payload)
    except ValueError:
        return
    wake(waiters, task_id)


@contextlib.contextmanager
def registered(waiters: StatusWaiters, task_id: UUID) -> Iterator[asyncio.Event]:
    event = asyncio.Event()
    waiters.by_task.setdefault(task_id, set()).add(event)
    try:
        yield event
    finally:
        events = waiters.by_task[task_id]
        events.discard(event)
        if not events:
            del waiters.by_task[task_id]


async def wait_for_change(pool: asyncpg.Pool, waiters: StatusWaiters, task_id: UUID, since: str,
                          timeout: float) -> str | None:
    """The task's status once it is no longer `since`, or when `timeout` runs out
    (None: the task is gone)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with registered(waiters, task_id) as changed:
        # Registered before the watch, and the watch before reading: a change after the
        # read notifies, and the notification finds this request.
        if not await wait_for(waiters.listening, timeout):
            async with pool.acquire() as conn:
                return await tasks.get_status(conn, task_id)
        try:
            async with pool.acquire() as conn:
                status = await tasks.watch_status(conn, task_id, timeout + WATCH_MARGIN_SECONDS,
                                                  timeout=max(deadline - loop.time(), 0.001))
        except TimeoutError:
            # The row stayed locked all along (a dispatch waiting for the broker, say):
            # answer with what is committed.
            async with pool.acquire() as conn:
                return await tasks.get_status(conn, task_id)
        while status == since and not waiters.closing:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await wait_for(changed, remaining):
                break
            changed.clear()
            async with pool.acquire() as conn:
                status = await tasks.get_status(conn, task_id)
    return status


async def status_listener(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the registry and its LISTEN connection, for the app's lifetime."""
    waiters = StatusWaiters()
    app[STATUS_WAITERS] = waiters
    stop = asyncio.Event()
    listener = asyncio.create_task(supervised("LISTEN task_status", lambda: db.listen(
        app[SETTINGS].database_url, "task_status", lambda payload: on_status_notify(waiters, payload), stop),
        stop))
    yield
    stop.set()
    await listener


async def release_waiters(app: web.Application) -> None:
    """on_shutdown: answer every waiting request now (with the status it last read)."""
    waiters = app[STATUS_WAITERS]
    waiters.closing = True
    wake(waiters)
