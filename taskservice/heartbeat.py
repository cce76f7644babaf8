"""The worker's heartbeat: a thread with its own event loop and database connection that
renews the leases of the attempts the worker holds, and watches the worker's event loop.

Renewing on the worker's own loop would stop whenever a handler blocks that loop (a CPU
loop inside an `async def`): one lease later the reaper would hand the task to another
worker and it would run twice. A thread carries on, since Python lets other threads run
every few milliseconds even while one runs pure-Python code (a C extension that holds the
GIL throughout would stop it too). The same thread notices when the loop stops ticking,
and logs which kind's handler held it and for how long.

What it renews is read from the worker's `running` dict (task id -> attempt), which only
the loop changes; what it finds (a cancel request, a lost lease) goes back to the loop
with call_soon_threadsafe.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from taskservice import db, metrics, tasks
from taskservice.settings import Settings

log = logging.getLogger(__name__)

# The loop records a tick this often; the thread looks this often.
TICK_SECONDS = 0.25
# A loop that has not ticked for this long is blocked, and logged.
BLOCKED_WARNING_SECONDS = 1.0


def held_attempts(running: Mapping[UUID, Any]) -> dict[UUID, Any]:
    """A copy of `running`, taken from the heartbeat's thread while the loop may change it.
    Copying a dict lets no other thread in (CPython); should that ever change, it is retried."""
    while True:
        try:
            return dict(running)
        except RuntimeError:  # changed size during the copy
            continue


@dataclass
class Blocked:
    tick: float  # the loop's last tick before it stopped
    kind: str | None  # whose handler was running, if one was
    task_id: UUID | None = None
    attempt: int | None = None

    def culprit(self) -> str:
        if self.kind is None:
            return "while no handler was running"
        return (f"by the handler of kind {self.kind!r} (task {self.task_id} attempt {self.attempt}); an async "
                "handler must not block: make it a plain def (it runs in a thread) or use executor='process'")


class Heartbeat:
    """Start with `start()` on the worker's loop, stop with `await stop()`."""

    def __init__(self, settings: Settings, running: Mapping[UUID, Any],
                 stop_held: Callable[[UUID, int, str], None]) -> None:
        self.settings = settings
        self.running = running
        self.stop_held = stop_held  # (task id, attempt, "cancel" or "lost"), called on the loop
        self.loop = asyncio.get_running_loop()
        self.last_tick = time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, name="heartbeat", daemon=True)
        self.ticking: asyncio.Task | None = None

    def start(self) -> None:
        self.ticking = asyncio.create_task(self.tick())
        self.thread.start()

    async def stop(self) -> None:
        self.done.set()
        if self.ticking is not None:
            self.ticking.cancel()
            await asyncio.gather(self.ticking, return_exceptions=True)
        await asyncio.to_thread(self.thread.join)

    async def tick(self) -> None:
        while True:
            self.last_tick = time.monotonic()
            await asyncio.sleep(TICK_SECONDS)

    def run(self) -> None:
        """The thread: watch the loop every tick, renew the leases every third of a lease."""
        loop = asyncio.new_event_loop()
        conn: asyncpg.Connection | None = None
        interval = self.settings.lease_seconds / 3
        renew_at, blocked = time.monotonic() + interval, None
        try:
            while not self.done.wait(max(0.0, min(TICK_SECONDS, renew_at - time.monotonic()))):
                try:
                    blocked = self.watch_loop(blocked)
                    if time.monotonic() >= renew_at:
                        renew_at = time.monotonic() + interval
                        conn = loop.run_until_complete(self.renew(conn))
                except Exception:
                    log.exception("heartbeat failed; carrying on")
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(conn.close(timeout=2))
            loop.close()

    async def renew(self, conn: asyncpg.Connection | None) -> asyncpg.Connection | None:
        """Renew every held lease; the connection to use next time (None: connect again)."""
        held = held_attempts(self.running)
        if not held:
            return conn
        settings = self.settings
        try:
            if conn is None:
                conn = await asyncpg.connect(settings.database_url, timeout=5,
                                             command_timeout=settings.lease_seconds / 3,
                                             server_settings={"application_name": "taskservice heartbeat"})
            rows = await tasks.renew_leases(conn, list(held), settings.worker_id, settings.lease_seconds)
        except db.UNAVAILABLE_ERRORS as exc:
            log.warning("lease renewal failed (%s)", type(exc).__name__)
            if conn is not None:
                conn.terminate()
            return None
        for row in rows:
            if row["cancel_requested_at"] is not None:
                self.call_on_loop(row["id"], held[row["id"]].task["attempts"], "cancel")
        # Not renewed: finished meanwhile, or the reaper took the task (our lease had run out).
        for task_id in held.keys() - {row["id"] for row in rows}:
            self.call_on_loop(task_id, held[task_id].task["attempts"], "lost")
        return conn

    def call_on_loop(self, task_id: UUID, attempt: int, reason: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the worker has stopped
            self.loop.call_soon_threadsafe(self.stop_held, task_id, attempt, reason)

    def watch_loop(self, blocked: Blocked | None) -> Blocked | None:
        """Log a loop that stopped ticking (once when noticed, once when it ticks again)."""
        last_tick = self.last_tick
        if blocked is None:
            if time.monotonic() - last_tick - TICK_SECONDS < BLOCKED_WARNING_SECONDS:
                return None
            blocked = self.whose_handler(last_tick)
            log.warning("event loop blocked for over %.1fs so far %s", time.monotonic() - last_tick - TICK_SECONDS,
                        blocked.culprit(), extra=self.context(blocked))
            return blocked
        if last_tick == blocked.tick:
            return blocked  # still blocked
        seconds = last_tick - blocked.tick - TICK_SECONDS
        metrics.EVENT_LOOP_BLOCKS.labels(blocked.kind or "none").inc()
        log.warning("event loop was blocked for %.1fs %s", seconds, blocked.culprit(), extra=self.context(blocked))
        return None

    def whose_handler(self, tick: float) -> Blocked:
        # Read from this thread: the loop is stuck inside its current task's step.
        current = asyncio.current_task(self.loop)
        for attempt in held_attempts(self.running).values():
            if attempt.handler_task is current:
                task = attempt.task
                return Blocked(tick, task["kind"], task["id"], task["attempts"])
        return Blocked(tick, None)

    @staticmethod
    def context(blocked: Blocked) -> dict[str, Any]:
        if blocked.task_id is None:
            return {}
        return {"task_id": str(blocked.task_id), "attempt": blocked.attempt, "kind": blocked.kind}
