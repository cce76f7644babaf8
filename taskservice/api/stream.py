"""Live status changes as Server-Sent Events: `GET /api/v1/tasks/stream`.

Writers do not send the events: a NOTIFY inside every writing transaction would
serialise all commits (migration 20261128000006). Each writing process sends one
coalesced `NOTIFY task_events` after its commits (taskservice.wakeups), and only
while some stream is open: the API process keeps its stream_listeners row alive
while it has one. On each such NOTIFY, one reader per process fetches the new rows
from task_events and feeds every open stream of the process, each through a bounded
queue. An open stream holds no pool connection.

Event ids are assigned before commit, so they commit out of id order: an id between
the last one read and the newest one seen that was not visible yet (a "gap") is
looked for again on every read, for GAP_SECONDS.
"""

import asyncio
import contextlib
import logging
import uuid
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

# The row lives this long unless renewed; a crashed process's row stops the announcements after it.
LISTENER_TTL_SECONDS = 30.0
LISTENER_RENEW_SECONDS = 10.0
# How long a new stream waits for LISTEN and the row to be in place before answering 503.
READY_TIMEOUT_SECONDS = 5.0
# aiohttp does not tell a handler that its client left; a stream looks this often.
DISCONNECT_CHECK_SECONDS = 1.0
# A gap is forgotten after this long: far longer than any of the service's writing transactions
# takes to commit (each is one statement or a short transaction; none waits on the broker),
# while a rolled-back transaction leaves its ids missing forever.
GAP_SECONDS = 30.0
# At most this many gaps are kept (the newest), so a read's id list stays bounded.
MAX_GAPS = 1000
# Rows per read; a full read is followed by another at once.
READ_BATCH = 500
RETRY_MILLISECONDS = 2000
# Retry-After of the 503 past STREAM_MAX_CLIENTS.
FULL_RETRY_AFTER_SECONDS = 5
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
    closed: bool = False  # the app is stopping: end now (a CLOSE in the queue may be dropped for a reset)

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
    read_due: asyncio.Event = field(default_factory=asyncio.Event)  # wakes read_forever
    # Where reading starts once the row is (re)announced: (newest id, ids before it not visible yet).
    start: tuple[int, list[int]] | None = None
    cursor: int = 0  # every event up to this id has been read, except the gaps
    gaps: dict[int, float] = field(default_factory=dict)  # id -> loop time it was first missed
    closing: bool = False


STREAM_HUB = web.AppKey("stream_hub", StreamHub)


def deliver(hub: StreamHub, event: dict[str, Any]) -> None:
    """Hand `event` to every stream that wants it."""
    for subscriber in hub.subscribers:
        if subscriber.wants(event):
            subscriber.push(event)


def on_event_notify(hub: StreamHub, payload: str | None) -> None:
    """A writer announced new events; or (payload None) LISTEN was (re)connected, and the
    announcements sent while it was down are lost: read in either case."""
    if payload is None:
        hub.listening.set()
    hub.read_due.set()


def event_from_row(row: asyncpg.Record) -> dict[str, Any]:
    """A task_events row (with its task's priority) in the stream's event shape."""
    return {"id": row["id"], "task_id": str(row["task_id"]), "from_status": row["from_status"],
            "status": row["status"], "priority": row["priority"], "attempt": row["attempt"],
            "created_at": row["created_at"].isoformat(timespec="microseconds")}


def track_gaps(hub: StreamHub, rows: list[asyncpg.Record], now: float) -> None:
    """Move the cursor past what `rows` (one read, in id order) hold. Ids between the old cursor
    and the newest row that it did not return were not visible: remember them as gaps. Gaps it
    returned are filled; gaps older than GAP_SECONDS, or beyond the MAX_GAPS newest, are dropped."""
    fresh = [row["id"] for row in rows if row["id"] > hub.cursor]
    for row in rows:
        hub.gaps.pop(row["id"], None)
    if fresh:
        returned = set(fresh)
        for missing in range(max(hub.cursor + 1, fresh[-1] - MAX_GAPS), fresh[-1]):
            if missing not in returned:
                hub.gaps[missing] = now
        hub.cursor = fresh[-1]
    for gap, first_missed in list(hub.gaps.items()):
        if now - first_missed > GAP_SECONDS:
            del hub.gaps[gap]
    if len(hub.gaps) > MAX_GAPS:
        for gap in sorted(hub.gaps)[:len(hub.gaps) - MAX_GAPS]:
            del hub.gaps[gap]


async def read_once(pool: asyncpg.Pool, hub: StreamHub) -> bool:
    """Deliver the events that became visible since the last read; True if the read was full."""
    if hub.start is not None:
        (hub.cursor, missing), hub.start = hub.start, None
        now = asyncio.get_running_loop().time()
        hub.gaps = {gap: now for gap in missing}
    async with pool.acquire() as conn:
        rows = await events.read_new(conn, hub.cursor, list(hub.gaps), READ_BATCH)
    track_gaps(hub, rows, asyncio.get_running_loop().time())
    for row in rows:
        deliver(hub, event_from_row(row))
    return len(rows) == READ_BATCH


async def read_forever(pool: asyncpg.Pool, hub: StreamHub, stop: asyncio.Event) -> None:
    """Read task_events whenever a NOTIFY (or a LISTEN reconnect, or the row being announced)
    asks for it, one read at a time; one asked for during a read follows it. Only while the
    process has open streams (its row is announced)."""
    while not stop.is_set():
        await wait_any((hub.read_due, stop), 3600)
        hub.read_due.clear()
        if stop.is_set() or not hub.announced.is_set():
            continue
        try:
            while await read_once(pool, hub):
                pass
        except db.UNAVAILABLE_ERRORS as exc:
            log.warning("stream reader: database unavailable (%s); retrying", type(exc).__name__)
            hub.read_due.set()
            await wait_for(stop, 1.0)


async def keep_listener_row(pool: asyncpg.Pool, hub: StreamHub, stop: asyncio.Event) -> None:
    """While streams are open, keep this process's stream_listeners row alive; once the last
    one closes, delete the row."""
    try:
        while not stop.is_set():
            hub.changed.clear()
            try:
                if hub.subscribers:
                    first = not hub.announced.is_set()
                    async with pool.acquire() as conn:
                        row = await events.announce_listener(conn, hub.listener_id, LISTENER_TTL_SECONDS,
                                                             MAX_GAPS if first else 0)
                    if first:
                        # Writers announce every change committed from now on; what committed since
                        # the row's snapshot is found by the read this starts.
                        hub.start = (row["latest_id"], row["missing_ids"])
                        hub.announced.set()
                        hub.read_due.set()
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
    """Wait until LISTEN is in place and the row is committed: a change committed after this is
    announced by its writer (whose announcement only goes out once it sees the row), so it is read."""
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


class StoppedReading(ConnectionResetError):
    """A write stayed blocked for STREAM_WRITE_TIMEOUT_SECONDS: the client's socket is full."""


async def send(response: web.StreamResponse, data: bytes, settings: Settings) -> None:
    # A client that stops reading fills the socket and blocks the write; its stream would otherwise
    # stay subscribed, and keep the writers announcing, for ever.
    try:
        async with asyncio.timeout(settings.stream_write_timeout_seconds):
            await response.write(data)
    except TimeoutError:
        raise StoppedReading("the client stopped reading") from None


def disconnected(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


async def serve_stream(request: web.Request, pool: asyncpg.Pool, hub: StreamHub, settings: Settings,
                       subscriber: Subscriber, resume_after: int | None) -> web.StreamResponse:
    """Answer with the stream: any replay after `resume_after`, `ready`, then live events
    until the client leaves or the app stops. Errors before the first byte are problems."""
    if hub.closing:
        raise Problem(503, "The server is shutting down; reconnect shortly.", headers={"Retry-After": "1"})
    if len(hub.subscribers) >= settings.stream_max_clients:
        raise Problem(503, "Too many status streams are open; try again shortly.",
                      headers={"Retry-After": str(FULL_RETRY_AFTER_SECONDS)})
    with subscribed(hub, subscriber):
        # Subscribed before the replay is read: a change committed meanwhile is in both,
        # and the live copy is skipped below; none falls in between.
        if not await until_live(hub, READY_TIMEOUT_SECONDS):
            raise Problem(503, "The status stream is unavailable; try again shortly.",
                          headers={"Retry-After": "1"})
        replayed, reset_to = [], None
        if resume_after is not None:
            async with pool.acquire() as conn:
                latest = await events.latest_id(conn)
                if resume_after > latest:
                    # An id this database never gave (a restore, another deployment): every live
                    # event would look already seen. Start the client afresh instead.
                    rows, reset_to, resume_after = [], latest, latest
                else:
                    rows = await events.replay(conn, resume_after, task_id=subscriber.task_id,
                                               status=subscriber.status, priority=subscriber.priority,
                                               limit=settings.stream_replay_limit + 1)
                    if len(rows) > settings.stream_replay_limit:
                        rows, reset_to = [], latest
            replayed = [event_from_row(row) for row in rows]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        try:
            await response.prepare(request)
            await write_events(request, response, subscriber, settings, resume_after, replayed, reset_to)
        except StoppedReading:
            # Close the connection too: the events it could not take would otherwise stay in the
            # kernel's buffers (megabytes a client) for as long as the client keeps it open.
            log.warning("status stream closed: its client stopped reading")
            if request.transport is not None:
                request.transport.abort()
        except ConnectionResetError:
            pass  # the client left
        return response


async def write_events(request: web.Request, response: web.StreamResponse, subscriber: Subscriber,
                       settings: Settings, resume_after: int | None, replayed: list[dict[str, Any]],
                       reset_to: int | None) -> None:
    # An `id:` line only when it moves the client's position forward: commit order is not
    # id order, and EventSource resumes from the last id it saw.
    position = resume_after or 0
    await send(response, b"retry: %d\n\n" % RETRY_MILLISECONDS, settings)
    for event in replayed:
        position = event["id"]
        await send(response, sse("status", event, position), settings)
    if reset_to is not None:
        position = max(position, reset_to)
        await send(response, sse("reset", {}, position), settings)
    await send(response, sse("ready", {"resumed": resume_after is not None, "replayed": len(replayed)}), settings)
    already_sent = {event["id"] for event in replayed}
    loop = asyncio.get_running_loop()
    next_heartbeat = loop.time() + settings.stream_heartbeat_seconds
    while not disconnected(request) and not subscriber.closed:
        try:
            async with asyncio.timeout(min(next_heartbeat - loop.time(), DISCONNECT_CHECK_SECONDS)):
                item = await subscriber.queue.get()
        except TimeoutError:
            if loop.time() >= next_heartbeat:
                await send(response, b": heartbeat\n\n", settings)
                next_heartbeat = loop.time() + settings.stream_heartbeat_seconds
            continue
        if item == CLOSE:
            return
        if item == RESET:
            await send(response, sse("reset", {}), settings)
            continue
        if item["id"] in already_sent or (resume_after is not None and item["id"] <= resume_after):
            continue
        await send(response, sse("status", item, item["id"] if item["id"] > position else None), settings)
        position = max(position, item["id"])


async def stream_listener(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the hub, its LISTEN connection, its reader and its listener row, for the app's
    lifetime."""
    hub = StreamHub()
    app[STREAM_HUB] = hub
    settings = app[SETTINGS]
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(supervised("LISTEN task_events", lambda: db.listen(
            settings.database_url, "task_events", lambda payload: on_event_notify(hub, payload), stop), stop)),
        asyncio.create_task(supervised("stream reader", lambda: read_forever(app[POOL], hub, stop), stop)),
        asyncio.create_task(supervised("stream listener row", lambda: keep_listener_row(app[POOL], hub, stop),
                                       stop)),
    ]
    yield
    stop.set()
    await asyncio.gather(*loops)


async def end_streams(app: web.Application) -> None:
    """on_shutdown: every open stream ends now (clients reconnect elsewhere with Last-Event-ID)."""
    hub = app[STREAM_HUB]
    hub.closing = True
    for subscriber in hub.subscribers:
        subscriber.closed = True
        subscriber.push(CLOSE)
