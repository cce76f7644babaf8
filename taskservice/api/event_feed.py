"""The API process's feed of committed status changes (task_events), read once per process and
handed to its two consumers: the open status streams (stream.py) and the requests waiting for a
task's status to change (status_waits.py).

Writers do not send the events: a NOTIFY inside every writing transaction would serialise all
commits (docs/design.md, "Notifications after commit"). Each writing process sends one coalesced `NOTIFY task_events`
after its commits (taskservice.wakeups), and only while some API process has a consumer: the
process keeps its stream_listeners row alive while it has one (and a little longer after a wait,
see WAIT_LINGER_SECONDS). On each such NOTIFY, one reader per process fetches the new rows from
task_events and hands each to the streams that want it and to the waits for its task. Neither
holds a pool connection.

Event ids are assigned before commit, so they commit out of id order: an id between the last one
read and the newest one seen that was not visible yet (a "gap") is looked for again on every
read, for GAP_SECONDS.

Progress reports are not status changes and leave no task_events row: each progress write sends
its value in a `NOTIFY task_progress` of its own (sql/tasks/record_progress.sql), heard on a
second LISTEN connection. A report is delivered to the streams only after the read that follows
its arrival, so after every status change committed before it; one whose task has moved on from
that attempt's IN_PROGRESS meanwhile is dropped. So a stream never shows a task's progress after
its final status, nor an attempt's progress after the next status change. Between two reads only
the latest report per task is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from aiohttp import web

from taskservice import db, events
from taskservice.api.keys import EVENTS_COMMITTED, POOL, PROCESS_ID, SETTINGS
from taskservice.lifecycle import supervised, wait_any, wait_for
from taskservice.wakeups import Pace, is_own_echo

if TYPE_CHECKING:
    from taskservice.api.status_waits import Waiter
    from taskservice.api.stream import Subscriber

log = logging.getLogger(__name__)

# The row lives this long unless renewed; a crashed process's row stops the announcements after it.
LISTENER_TTL_SECONDS = 30.0
LISTENER_RENEW_SECONDS = 10.0
# The row outlives the last wait by this long: a client following a task waits again at once,
# and announcing the row anew would cost that wait a write and a round trip before it is live.
WAIT_LINGER_SECONDS = 10.0
# A gap is forgotten after this long: far longer than any of the service's writing transactions
# takes to commit (each is one statement or a short transaction; none waits on the broker),
# while a rolled-back transaction leaves its ids missing forever.
GAP_SECONDS = 30.0
# At most this many gaps are kept (the newest), so a read's id list stays bounded.
MAX_GAPS = 1000
# Rows per read; a full read is followed by another at once.
READ_BATCH = 500
# Reads: up to READ_BURST at once, then one per READ_INTERVAL_SECONDS. An idle task's outcome
# is read at once; a busy process, asked after every commit and every announcement, reads what
# committed meanwhile in one read.
READ_INTERVAL_SECONDS = 0.01
READ_BURST = 4
# The latest status (and attempt) of this many tasks, the most recently changed, is kept to
# tell a progress report that arrives after its attempt ended.
TRACKED_TASKS = 10_000


@dataclass
class EventFeed:
    # Its stream_listeners row; the process id (PROCESS_ID), so this process's announcements skip it.
    listener_id: uuid.UUID = field(default_factory=uuid.uuid4)
    subscribers: set[Subscriber] = field(default_factory=set)  # open streams
    waiters: dict[str, set[Waiter]] = field(default_factory=dict)  # task id (as in events) -> its waits
    listening: asyncio.Event = field(default_factory=asyncio.Event)  # LISTEN is in place
    announced: asyncio.Event = field(default_factory=asyncio.Event)  # our stream_listeners row is committed
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # wakes keep_listener_row
    read_due: asyncio.Event = field(default_factory=asyncio.Event)  # wakes read_forever
    renew_at: float = 0.0  # loop time the row is next renewed
    linger_until: float = 0.0  # loop time until which the row is kept for waits to come
    # Where reading starts once the row is (re)announced: (newest id, ids before it not visible yet).
    start: tuple[int, list[int]] | None = None
    cursor: int = 0  # every event up to this id has been read, except the gaps
    gaps: dict[int, float] = field(default_factory=dict)  # id -> loop time it was first missed
    closing: bool = False  # the app is stopping
    read_started_at: float = -1.0  # loop time the latest read began: it sees what committed before
    # Progress reports heard since the last read began: task id -> the latest report's event.
    progress_due: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Task id -> (status, attempt) of its latest status event read, most recent last.
    task_states: OrderedDict[str, tuple[str, int]] = field(default_factory=OrderedDict)

    @property
    def own_id(self) -> str:
        """The payload of this process's announcements: read at once already (read_own_commits)."""
        return self.listener_id.hex


EVENT_FEED = web.AppKey("event_feed", EventFeed)


def deliver(feed: EventFeed, event: dict[str, Any]) -> None:
    """Hand `event` to every stream that wants it and to every wait for its task."""
    for subscriber in feed.subscribers:
        if subscriber.wants(event):
            subscriber.push(event)
    for waiter in feed.waiters.get(event["task_id"], ()):
        waiter.offer(event)


def on_event_notify(feed: EventFeed, payload: str | None) -> None:
    """A writer announced new events; or (payload None) LISTEN was (re)connected, and the
    announcements sent while it was down are lost: read in either case. This process's own
    announcements are skipped: its commits asked for a read already. The waits for the tasks
    an announcement names as COMPLETED are answered at once (events.announce)."""
    if payload is None:
        feed.listening.set()
    else:
        sender, _, completed = payload.partition(" ")
        if is_own_echo(sender, feed.own_id):
            return
        try:
            finished = [str(uuid.UUID(hex=task_id)) for task_id in completed.split(",") if task_id]
        except ValueError:
            log.warning("ignored the task ids of a malformed task_events notification")
            finished = []
        for task_id in finished:
            for waiter in feed.waiters.get(task_id, ()):
                waiter.finish("COMPLETED")
    feed.read_due.set()


def read_own_commits(feed: EventFeed, committed_at: float) -> None:
    """This process committed status changes (the earliest at loop time `committed_at`): read
    them, unless no one is reading or a read has begun since (it sees them: e.g. the read
    another process's later announcement started, when this one was put off, AfterCommit.soon)."""
    if feed.announced.is_set() and feed.read_started_at <= committed_at:
        feed.read_due.set()


def on_progress_notify(feed: EventFeed, payload: str | None) -> None:
    """A progress report was committed; it is delivered after the read this asks for. (None:
    LISTEN was reconnected; reports missed meanwhile are not replayed: the task JSON has the
    latest.)"""
    if payload is None or not feed.announced.is_set():
        return
    try:
        event = progress_event(orjson.loads(payload))
    except (ValueError, KeyError, TypeError):
        log.warning("ignored a malformed task_progress notification")
        return
    feed.progress_due[event["task_id"]] = event
    feed.read_due.set()


def progress_event(report: dict[str, Any]) -> dict[str, Any]:
    """A task_progress payload in the stream's `progress` event shape (the progress as the task
    JSON shows it), with the status filters see."""
    updated_at = datetime.fromisoformat(report["updated_at"])
    return {"task_id": str(report["task_id"]), "status": "IN_PROGRESS", "priority": report["priority"],
            "attempt": int(report["attempt"]),
            "progress": {"fraction": float(report["fraction"]), "message": report["message"],
                         "updated_at": updated_at.isoformat(timespec="microseconds")}}


def remember_status(feed: EventFeed, event: dict[str, Any]) -> None:
    feed.task_states[event["task_id"]] = (event["status"], event["attempt"])
    feed.task_states.move_to_end(event["task_id"])
    if len(feed.task_states) > TRACKED_TASKS:
        feed.task_states.popitem(last=False)


def deliver_progress(feed: EventFeed, due: dict[str, dict[str, Any]]) -> None:
    """Hand each report to the streams that want it, unless its attempt has ended (a status event
    read since says so); a task whose status the feed has not read is taken as running."""
    for task_id, event in due.items():
        state = feed.task_states.get(task_id)
        if state is not None and state != ("IN_PROGRESS", event["attempt"]):
            continue
        for subscriber in feed.subscribers:
            if subscriber.wants(event):
                subscriber.push(event)


def event_from_row(row: asyncpg.Record) -> dict[str, Any]:
    """A task_events row (with its task's priority and queue) in the stream's event shape."""
    return {"id": row["id"], "task_id": str(row["task_id"]), "from_status": row["from_status"],
            "status": row["status"], "priority": row["priority"], "queue": row["queue"], "attempt": row["attempt"],
            "created_at": row["created_at"].isoformat(timespec="microseconds")}


def track_gaps(feed: EventFeed, rows: list[asyncpg.Record], now: float) -> None:
    """Move the cursor past what `rows` (one read, in id order) hold. Ids between the old cursor
    and the newest row that it did not return were not visible: remember them as gaps. Gaps it
    returned are filled; gaps older than GAP_SECONDS, or beyond the MAX_GAPS newest, are dropped."""
    fresh = [row["id"] for row in rows if row["id"] > feed.cursor]
    for row in rows:
        feed.gaps.pop(row["id"], None)
    if fresh:
        returned = set(fresh)
        for missing in range(max(feed.cursor + 1, fresh[-1] - MAX_GAPS), fresh[-1]):
            if missing not in returned:
                feed.gaps[missing] = now
        feed.cursor = fresh[-1]
    for gap, first_missed in list(feed.gaps.items()):
        if now - first_missed > GAP_SECONDS:
            del feed.gaps[gap]
    if len(feed.gaps) > MAX_GAPS:
        for gap in sorted(feed.gaps)[:len(feed.gaps) - MAX_GAPS]:
            del feed.gaps[gap]


async def read_once(pool: asyncpg.Pool, feed: EventFeed) -> bool:
    """Deliver the events that became visible since the last read; True if the read was full."""
    if feed.start is not None:
        (feed.cursor, missing), feed.start = feed.start, None
        now = asyncio.get_running_loop().time()
        feed.gaps = {gap: now for gap in missing}
    feed.read_started_at = asyncio.get_running_loop().time()
    # Only the streams filter on a task's priority and queue: with none open, the read leaves the
    # tasks alone (a lookup per event, with waits open while tasks are created fast).
    streams = bool(feed.subscribers)
    async with pool.acquire() as conn:
        rows = await events.read_new(conn, feed.cursor, list(feed.gaps), READ_BATCH, streams)
    if feed.subscribers and not streams:
        return True  # a stream opened meanwhile: the same events again, at once, for it too
    track_gaps(feed, rows, asyncio.get_running_loop().time())
    for row in rows:
        event = event_from_row(row)
        remember_status(feed, event)
        deliver(feed, event)
    return len(rows) == READ_BATCH


async def read_forever(pool: asyncpg.Pool, feed: EventFeed, stop: asyncio.Event) -> None:
    """Read task_events whenever a NOTIFY (or a LISTEN reconnect, or the row being announced)
    asks for it, one read at a time; one asked for during a read follows it. Only while the
    row is announced."""
    pace = Pace(READ_INTERVAL_SECONDS, READ_BURST)
    while not stop.is_set():
        await wait_any((feed.read_due, stop), 3600)
        if not await pace.turn(stop):
            return
        feed.read_due.clear()  # what was asked for while waiting for the turn is read by this read
        # The reports heard so far go out after this read: after every status change committed before them.
        progress_due, feed.progress_due = feed.progress_due, {}
        if stop.is_set() or not feed.announced.is_set():
            continue
        try:
            while await read_once(pool, feed):
                pass
        except db.UNAVAILABLE_ERRORS as exc:
            log.warning("event feed reader: database unavailable (%s); retrying", type(exc).__name__)
            feed.read_due.set()
            feed.progress_due = {**progress_due, **feed.progress_due}
            await wait_for(stop, 1.0)
            continue
        deliver_progress(feed, progress_due)


def in_use(feed: EventFeed) -> bool:
    return bool(feed.subscribers or feed.waiters)


async def keep_listener_row(pool: asyncpg.Pool, feed: EventFeed, stop: asyncio.Event) -> None:
    """While the feed has consumers (or lingers after a wait), keep this process's
    stream_listeners row alive; after that, delete the row."""
    loop = asyncio.get_running_loop()
    try:
        while not stop.is_set():
            feed.changed.clear()
            keep = in_use(feed) or (feed.announced.is_set() and loop.time() < feed.linger_until)
            try:
                if keep and (not feed.announced.is_set() or loop.time() >= feed.renew_at):
                    first = not feed.announced.is_set()
                    async with pool.acquire() as conn:
                        row = await events.announce_listener(conn, feed.listener_id, LISTENER_TTL_SECONDS,
                                                             MAX_GAPS if first else 0)
                    feed.renew_at = loop.time() + LISTENER_RENEW_SECONDS
                    if first:
                        # Writers announce every change committed from now on; what committed since
                        # the row's snapshot is found by the read this starts.
                        feed.start = (row["latest_id"], row["missing_ids"])
                        feed.announced.set()
                        feed.read_due.set()
                elif not keep and feed.announced.is_set():
                    feed.announced.clear()  # before the delete: a consumer arriving meanwhile waits for the next row
                    async with pool.acquire() as conn:
                        await events.withdraw_listener(conn, feed.listener_id)
            except db.UNAVAILABLE_ERRORS as exc:
                log.warning("event feed listener row: database unavailable (%s); retrying", type(exc).__name__)
                await wait_for(stop, 1.0)
                continue
            if not keep:
                wake_at = loop.time() + 3600
            elif in_use(feed):
                wake_at = feed.renew_at
            else:
                wake_at = min(feed.renew_at, feed.linger_until)
            await wait_any((feed.changed, stop), max(wake_at - loop.time(), 0))
    finally:
        if feed.announced.is_set():
            feed.announced.clear()
            with contextlib.suppress(*db.UNAVAILABLE_ERRORS):
                async with pool.acquire(timeout=2) as conn:
                    await events.withdraw_listener(conn, feed.listener_id)


def is_live(feed: EventFeed) -> bool:
    """LISTEN is in place and the row is committed: every change committed from now on is
    announced by its writer (whose announcement only goes out once it sees the row), so it is read."""
    return feed.listening.is_set() and feed.announced.is_set()


async def until_live(feed: EventFeed, timeout: float) -> bool:
    """Wait until the feed is live (is_live); False if it was not within `timeout`."""
    feed.changed.set()  # a consumer registered just now may be the one the row is needed for
    try:
        async with asyncio.timeout(timeout):
            await feed.listening.wait()
            await feed.announced.wait()
    except TimeoutError:
        return False
    return True


async def event_feed(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the feed, its LISTEN connections, its reader and its listener row, for the app's
    lifetime."""
    feed = EventFeed(listener_id=uuid.UUID(app[PROCESS_ID]))
    app[EVENT_FEED] = feed
    settings = app[SETTINGS]
    stop = asyncio.Event()
    # This process's own commits (its requests', its embedded dispatcher's) are read at once,
    # without waiting for their NOTIFY to come back.
    own_commits = functools.partial(read_own_commits, feed)
    app[EVENTS_COMMITTED].local.append(own_commits)
    loops = [
        asyncio.create_task(supervised("LISTEN task_events", lambda: db.listen(
            settings.database_url, "task_events", lambda payload: on_event_notify(feed, payload), stop), stop)),
        asyncio.create_task(supervised("LISTEN task_progress", lambda: db.listen(
            settings.database_url, "task_progress", lambda payload: on_progress_notify(feed, payload), stop),
            stop)),
        asyncio.create_task(supervised("event feed reader", lambda: read_forever(app[POOL], feed, stop), stop)),
        asyncio.create_task(supervised("event feed listener row",
                                       lambda: keep_listener_row(app[POOL], feed, stop), stop)),
    ]
    yield
    app[EVENTS_COMMITTED].local.remove(own_commits)
    stop.set()
    await asyncio.gather(*loops)
