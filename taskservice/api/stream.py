"""Live status changes as Server-Sent Events: `GET /api/v1/tasks/stream`.

One LISTEN task_events connection per API process feeds every open stream of the
process, each through a bounded queue. A status change sends that NOTIFY only while
some stream is open: the process keeps its stream_listeners row alive while it has
one (migration 20261128000006), because a NOTIFY in every writing transaction would
serialise all commits. An open stream holds no pool connection.
"""

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from taskservice import db, events
from taskservice.api.keys import POOL, SETTINGS
from taskservice.api.problems import Problem
from taskservice.lifecycle import supervised, wait_any, wait_for
from taskservice.settings import Settings

log = logging.getLogger(__name__)

# The row lives this long unless renewed; a crashed process's row stops the NOTIFYs after it.
LISTENER_TTL_SECONDS = 30.0
LISTENER_RENEW_SECONDS = 10.0
# How long a new stream waits for LISTEN and the row to be in place before answering 503.
READY_TIMEOUT_SECONDS = 5.0
# aiohttp does not tell a handler that its client left; a stream looks this often.
DISCONNECT_CHECK_SECONDS = 1.0
# Event ids the process delivered lately: a catch-up after a LISTEN reconnect skips them.
RECENT_IDS = 10_000
RETRY_MILLISECONDS = 2000
# Queue items besides events: tell the client to reload; the app is stopping.
RESET = "reset"
CLOSE = "close"


@dataclass(eq=False)
class Subscriber:
    """One open stream: its filters and the events waiting to be written to it."""
    task_id: str | None
    status: str | None
    priority: str | None
    queue: asyncio.Queue

    def wants(self, event: dict[str, Any]) -> bool:
        return ((self.task_id is None or event["task_id"] == self.task_id)
                and (self.status is None or event["status"] == self.status)
                and (self.priority is None or event["priority"] == self.priority))

    def push(self, item: dict[str, Any] | str) -> None:
        """Queue `item`; a full queue is dropped for a `reset` (or `close`): memory stays bounded."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(item if item in (RESET, CLOSE) else RESET)


@dataclass
class StreamHub:
    listener_id: uuid.UUID = field(default_factory=uuid.uuid4)
    subscribers: set[Subscriber] = field(default_factory=set)
    listening: asyncio.Event = field(default_factory=asyncio.Event)  # LISTEN is in place
    announced: asyncio.Event = field(default_factory=asyncio.Event)  # our stream_listeners row is committed
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # wakes keep_listener_row
    connected_before: bool = False
    catch_up_due: bool = False
    high_water: int = 0  # the newest event id delivered (or committed when the row was first announced)
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_IDS))
    recent_ids: set[int] = field(default_factory=set)
    closing: bool = False


STREAM_HUB = web.AppKey("stream_hub", StreamHub)


def deliver(hub: StreamHub, event: dict[str, Any]) -> None:
    """Hand `event` to every stream that wants it, once per process."""
    if event["id"] in hub.recent_ids:
        return
    if len(hub.recent) == hub.recent.maxlen:
        hub.recent_ids.discard(hub.recent[0])
    hub.recent.append(event["id"])
    hub.recent_ids.add(event["id"])
    hub.high_water = max(hub.high_water, event["id"])
    for subscriber in hub.subscribers:
        if subscriber.wants(event):
            subscriber.push(event)


def on_event_notify(hub: StreamHub, payload: str | None) -> None:
    if payload is None:
        # (Re)connected. NOTIFYs sent while the connection was down are lost: catch up.
        hub.listening.set()
        if hub.connected_before:
            hub.catch_up_due = True
            hub.changed.set()
        hub.connected_before = True
        return
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return
    deliver(hub, event)


def event_from_row(row: asyncpg.Record) -> dict[str, Any]:
    """A replayed row in the shape the trigger's NOTIFY payload has."""
    return {"id": row["id"], "task_id": str(row["task_id"]), "from_status": row["from_status"],
            "status": row["status"], "priority": row["priority"], "attempt": row["attempt"],
            "created_at": row["created_at"].isoformat(timespec="microseconds")}


async def catch_up(pool: asyncpg.Pool, hub: StreamHub, limit: int) -> None:
    """Deliver what was committed past `high_water` while LISTEN was down; beyond `limit`
    events every stream gets `reset` instead."""
    async with pool.acquire() as conn:
        rows = await events.replay(conn, hub.high_water, task_id=None, status=None, priority=None,
                                   limit=limit + 1)
        if len(rows) > limit:
            hub.high_water = await events.latest_id(conn)
            for subscriber in hub.subscribers:
                subscriber.push(RESET)
            return
    for row in rows:
        deliver(hub, event_from_row(row))


async def keep_listener_row(pool: asyncpg.Pool, hub: StreamHub, settings: Settings, stop: asyncio.Event) -> None:
    """While streams are open, keep this process's stream_listeners row alive (and catch up
    after a LISTEN reconnect); once the last one closes, delete the row."""
    try:
        while not stop.is_set():
            hub.changed.clear()
            try:
                if hub.subscribers:
                    async with pool.acquire() as conn:
                        latest = await events.announce_listener(conn, hub.listener_id, LISTENER_TTL_SECONDS)
                    if not hub.announced.is_set():
                        hub.high_water = max(hub.high_water, latest)
                        hub.announced.set()
                    if hub.catch_up_due:
                        hub.catch_up_due = False
                        try:
                            await catch_up(pool, hub, settings.stream_replay_limit)
                        except db.UNAVAILABLE_ERRORS:
                            hub.catch_up_due = True  # next time round
                            raise
                elif hub.announced.is_set():
                    hub.announced.clear()  # before the delete: a stream opened meanwhile waits for the next row
                    async with pool.acquire() as conn:
                        await events.withdraw_listener(conn, hub.listener_id)
            except db.UNAVAILABLE_ERRORS as exc:
                log.warning("stream listener row: database unavailable (%s); retrying", type(exc).__name__)
                await wait_for(stop, 1.0)
                continue
            await wait_any((hub.changed, stop), LISTENER_RENEW_SECONDS if hub.subscribers else 3600)
    finally:
        if hub.announced.is_set():
            hub.announced.clear()
            with contextlib.suppress(*db.UNAVAILABLE_ERRORS):
                async with pool.acquire(timeout=2) as conn:
                    await events.withdraw_listener(conn, hub.listener_id)


@contextlib.contextmanager
def subscribed(hub: StreamHub, subscriber: Subscriber) -> Iterator[Subscriber]:
    hub.subscribers.add(subscriber)
    hub.changed.set()
    try:
        yield subscriber
    finally:
        hub.subscribers.discard(subscriber)
        hub.changed.set()


async def until_live(hub: StreamHub, timeout: float) -> bool:
    """Wait until LISTEN is in place and the row is committed: a change made after this notifies."""
    try:
        async with asyncio.timeout(timeout):
            await hub.listening.wait()
            await hub.announced.wait()
    except TimeoutError:
        return False
    return True


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    id_line = b"" if event_id is None else b"id: %d\n" % event_id
    return id_line + b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def disconnected(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


async def serve_stream(request: web.Request, pool: asyncpg.Pool, hub: StreamHub, settings: Settings,
                       subscriber: Subscriber, resume_after: int | None) -> web.StreamResponse:
    """Answer with the stream: any replay after `resume_after`, `ready`, then live events
    until the client leaves or the app stops. Errors before the first byte are problems."""
    if hub.closing:
        raise Problem(503, "The server is shutting down; reconnect shortly.", headers={"Retry-After": "1"})
    with subscribed(hub, subscriber):
        # Subscribed before the replay is read: a change committed meanwhile is in both,
        # and the live copy is skipped below; none falls in between.
        if not await until_live(hub, READY_TIMEOUT_SECONDS):
            raise Problem(503, "The status stream is unavailable; try again shortly.",
                          headers={"Retry-After": "1"})
        replayed, reset_to = [], None
        if resume_after is not None:
            async with pool.acquire() as conn:
                rows = await events.replay(conn, resume_after, task_id=subscriber.task_id,
                                           status=subscriber.status, priority=subscriber.priority,
                                           limit=settings.stream_replay_limit + 1)
                if len(rows) > settings.stream_replay_limit:
                    rows, reset_to = [], await events.latest_id(conn)
            replayed = [event_from_row(row) for row in rows]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        try:
            await response.prepare(request)
            await write_events(request, response, subscriber, settings, resume_after, replayed, reset_to)
        except ConnectionResetError:
            pass  # the client left
        return response


async def write_events(request: web.Request, response: web.StreamResponse, subscriber: Subscriber,
                       settings: Settings, resume_after: int | None, replayed: list[dict[str, Any]],
                       reset_to: int | None) -> None:
    # An `id:` line only when it moves the client's position forward: commit order is not
    # id order, and EventSource resumes from the last id it saw.
    position = resume_after or 0
    await response.write(b"retry: %d\n\n" % RETRY_MILLISECONDS)
    for event in replayed:
        position = event["id"]
        await response.write(sse("status", event, position))
    if reset_to is not None:
        position = max(position, reset_to)
        await response.write(sse("reset", {}, position))
    await response.write(sse("ready", {"resumed": resume_after is not None, "replayed": len(replayed)}))
    already_sent = {event["id"] for event in replayed}
    loop = asyncio.get_running_loop()
    next_heartbeat = loop.time() + settings.stream_heartbeat_seconds
    while not disconnected(request):
        try:
            async with asyncio.timeout(min(next_heartbeat - loop.time(), DISCONNECT_CHECK_SECONDS)):
                item = await subscriber.queue.get()
        except TimeoutError:
            if loop.time() >= next_heartbeat:
                await response.write(b": heartbeat\n\n")
                next_heartbeat = loop.time() + settings.stream_heartbeat_seconds
            continue
        if item == CLOSE:
            return
        if item == RESET:
            await response.write(sse("reset", {}))
            continue
        if item["id"] in already_sent or (resume_after is not None and item["id"] <= resume_after):
            continue
        await response.write(sse("status", item, item["id"] if item["id"] > position else None))
        position = max(position, item["id"])


async def stream_listener(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the hub, its LISTEN connection and its listener row, for the app's lifetime."""
    hub = StreamHub()
    app[STREAM_HUB] = hub
    settings = app[SETTINGS]
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(supervised("LISTEN task_events", lambda: db.listen(
            settings.database_url, "task_events", lambda payload: on_event_notify(hub, payload), stop), stop)),
        asyncio.create_task(supervised("stream listener row", lambda: keep_listener_row(
            app[POOL], hub, settings, stop), stop)),
    ]
    yield
    stop.set()
    await asyncio.gather(*loops)


async def end_streams(app: web.Application) -> None:
    """on_shutdown: every open stream ends now (clients reconnect elsewhere with Last-Event-ID)."""
    hub = app[STREAM_HUB]
    hub.closing = True
    for subscriber in hub.subscribers:
        subscriber.push(CLOSE)
