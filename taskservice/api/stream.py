"""Live status changes as Server-Sent Events: `GET /api/v1/tasks/stream`: `status` events
(replayed from Last-Event-ID) and the running handlers' `progress` events (live only).

Each open stream subscribes to the process's event feed (event_feed.py), which reads every
committed status change once and pushes those a stream wants into its bounded queue. An open
stream holds no pool connection.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from taskservice import events
from taskservice.api.event_feed import EVENT_FEED, EventFeed, event_from_row, until_live
from taskservice.api.problems import Problem
from taskservice.settings import Settings

log = logging.getLogger(__name__)

# How long a new stream waits for LISTEN and the row to be in place before answering 503.
READY_TIMEOUT_SECONDS = 5.0
# aiohttp does not tell a handler that its client left; a stream looks this often.
DISCONNECT_CHECK_SECONDS = 1.0
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
    task_queue: str | None = None  # only tasks routed through this (task) queue
    closed: bool = False  # the app is stopping: end now (a CLOSE in the queue may be dropped for a reset)

    def wants(self, event: dict[str, Any]) -> bool:
        return ((self.task_id is None or event["task_id"] == self.task_id)
                and (self.status is None or event["status"] == self.status)
                and (self.priority is None or event["priority"] == self.priority)
                and (self.task_queue is None or event["queue"] == self.task_queue))

    def push(self, item: dict[str, Any] | str) -> None:
        """Queue `item`; a full queue is dropped for a `reset` (or `close`): memory stays bounded."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(item if item in (RESET, CLOSE) else RESET)


@contextlib.contextmanager
def subscribed(feed: EventFeed, subscriber: Subscriber) -> Iterator[Subscriber]:
    feed.subscribers.add(subscriber)
    feed.changed.set()
    try:
        yield subscriber
    finally:
        feed.subscribers.discard(subscriber)
        feed.changed.set()


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


async def serve_stream(request: web.Request, pool: asyncpg.Pool, feed: EventFeed, settings: Settings,
                       subscriber: Subscriber, resume_after: int | None) -> web.StreamResponse:
    """Answer with the stream: any replay after `resume_after`, `ready`, then live events
    until the client leaves or the app stops. Errors before the first byte are problems."""
    if feed.closing:
        raise Problem(503, "The server is shutting down; reconnect shortly.", headers={"Retry-After": "1"})
    if len(feed.subscribers) >= settings.stream_max_clients:
        raise Problem(503, "Too many status streams are open; try again shortly.",
                      headers={"Retry-After": str(FULL_RETRY_AFTER_SECONDS)})
    with subscribed(feed, subscriber):
        # Subscribed before the replay is read: a change committed meanwhile is in both,
        # and the live copy is skipped below; none falls in between.
        if not await until_live(feed, READY_TIMEOUT_SECONDS):
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
                                               queue=subscriber.task_queue,
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
        if "progress" in item:
            # No `id:` line: progress is not in the history a resumed stream replays
            # (the task JSON has the latest).
            await send(response, sse("progress", item), settings)
            continue
        if item["id"] in already_sent or (resume_after is not None and item["id"] <= resume_after):
            continue
        await send(response, sse("status", item, item["id"] if item["id"] > position else None), settings)
        position = max(position, item["id"])


async def end_streams(app: web.Application) -> None:
    """on_shutdown: every open stream ends now (clients reconnect elsewhere with Last-Event-ID)."""
    feed = app[EVENT_FEED]
    feed.closing = True
    for subscriber in feed.subscribers:
        subscriber.closed = True
        subscriber.push(CLOSE)
