"""A running handler's progress (`ctx.progress(fraction, message)`): checked where the handler
calls it, then written by the worker at most once per PROGRESS_INTERVAL_SECONDS per attempt.

The latest report wins: reports made between two writes replace one another, and the last
one is written before the attempt's outcome (Reporter.finish). Every write is guarded by the
attempt it belongs to, so nothing is written once the attempt has ended. Reports may come
from any thread (a thread handler's, or a process handler's supervising thread): only the
writes run on the worker's event loop.
"""

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from taskservice.lifecycle import wait_for

log = logging.getLogger(__name__)

# At most this many progress writes a second per attempt.
PROGRESS_INTERVAL_SECONDS = 0.25
MAX_MESSAGE_LENGTH = 1000

Report = tuple[float, str | None]
# Stores a report for the attempt; False when the attempt is no longer ours. Progress is best
# effort: a write that fails is logged and skipped (the next report says more anyway).
Write = Callable[[float, str | None], Awaitable[bool]]


def checked(fraction: float, message: str | None) -> Report:
    """The report as it is stored; raises where the handler calls ctx.progress, so a bad value
    is the handler's bug, shown in its traceback."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise TypeError(f"progress fraction must be a number from 0 to 1, not {type(fraction).__name__}")
    if not (0 <= fraction <= 1):  # (NaN too)
        raise ValueError(f"progress fraction must be from 0 to 1, got {fraction!r}")
    if message is not None:
        if not isinstance(message, str):
            raise TypeError(f"progress message must be a str or None, not {type(message).__name__}")
        if len(message) > MAX_MESSAGE_LENGTH:
            raise ValueError(f"progress message is {len(message)} characters, more than {MAX_MESSAGE_LENGTH}")
        if "\x00" in message:
            raise ValueError("progress message contains a NUL character, which PostgreSQL cannot store")
    return float(fraction), message


@dataclass(eq=False)
class Reporter:
    """One attempt's progress reports and the loop task that writes them."""
    write: Write
    loop: asyncio.AbstractEventLoop
    interval: float = PROGRESS_INTERVAL_SECONDS
    lock: threading.Lock = field(default_factory=threading.Lock)
    latest: Report | None = None  # reported, not written yet
    writing: bool = False  # a writer task is scheduled or running
    closed: bool = False  # the attempt ended (or is no longer ours): reports are ignored
    next_write_at: float = 0.0  # loop time
    hurry: asyncio.Event = field(default_factory=asyncio.Event)  # finish: write what is left now
    writer: asyncio.Task | None = None

    def report(self, fraction: float, message: str | None) -> None:
        """Take a report (already checked); from any thread."""
        with self.lock:
            if self.closed:
                return
            self.latest = (fraction, message)
            if self.writing:
                return
            self.writing = True
        self.loop.call_soon_threadsafe(self.start_writer)

    def start_writer(self) -> None:
        self.writer = self.loop.create_task(self.write_latest())

    async def write_latest(self) -> None:
        """Write the latest report, then any that came meanwhile, one per interval, until none is left."""
        while True:
            delay = self.next_write_at - self.loop.time()
            if delay > 0 and not self.hurry.is_set():
                await wait_for(self.hurry, delay)
            with self.lock:
                report, self.latest = self.latest, None
                if report is None:
                    self.writing = False
                    return
            self.next_write_at = self.loop.time() + self.interval
            try:
                ours = await self.write(*report)
            except Exception:
                log.warning("progress not recorded", exc_info=True)
                continue
            if not ours:
                with self.lock:
                    self.closed, self.latest, self.writing = True, None, False
                return

    async def finish(self) -> None:
        """The attempt's handler has ended: write its last report now, before the outcome, and
        take no more (an abandoned thread may still report)."""
        with self.lock:
            self.closed = True
            pending = self.writing
        if pending:
            self.hurry.set()
            while self.writer is None:  # scheduled from another thread, not started yet
                await asyncio.sleep(0)
            await self.writer
