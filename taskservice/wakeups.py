"""Wake-ups sent after commits: a NOTIFY in its own tiny statement, paced.

A NOTIFY inside a writing transaction takes a database-wide lock at commit and
holds it through the WAL flush, so those commits would go one at a time. So
writers set an `AfterCommit` event after committing, and one loop per purpose
and process turns it into NOTIFYs, paced by a `Pace`: the outbox's
(`outbox.notify_due`, waking the dispatchers) and the status stream's
(`events.announce`, waking the streaming API processes). The same event wakes
this process's own listeners (the embedded dispatcher, the API's event feed) at
once, with no round trip through PostgreSQL.

One exception, for latency: an idle worker's completion carries its own NOTIFY
(tasks/complete.sql), when nothing else waits to be announced and the pace has a
turn free (AfterCommit.quiet). Idle, its commit has no other to hold up; busy, the
worker is back to announcing after commits.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from uuid import UUID

import asyncpg

from taskservice import db
from taskservice.lifecycle import supervised, wait_any, wait_for

# A sender's NOTIFYs: up to WAKEUP_BURST at once, then one per WAKEUP_INTERVAL_SECONDS. A burst
# of one held a change that followed another within the interval back for the rest of it (an
# idle task's outcome, 2 ms after its IN_PROGRESS); a busy process sends at most 1 / interval:
# with waits open, twice that rate cost PostgreSQL about 0.4 ms of CPU per create in NOTIFYs and
# the feed reads they start.
WAKEUP_INTERVAL_SECONDS = 0.01
WAKEUP_BURST = 4
# How long an intermediate status change may wait to be announced together with the next one
# (AfterCommit.soon): the whole interval the pacing used to impose on every second change.
SOON_SECONDS = 0.01

# Called with a connection and the tasks completed since the last call (AfterCommit.completed).
Notify = Callable[[asyncpg.Connection, list[UUID]], Awaitable[None]]


class AfterCommit(asyncio.Event):
    """Set by writers after committing. Also calls, at once, the hooks of this process's own
    listeners in `local` (the embedded dispatcher, the API's event feed): a NOTIFY would reach
    them a round trip or two later.

    `soon()` is for a change that another one usually follows within milliseconds (a task
    created, PENDING, IN_PROGRESS): it sets the event within SOON_SECONDS, or with the next
    `set()` if that comes first, so the two are announced and read together. On a small machine
    each announcement and read of an intermediate change took CPU from the very pipeline that
    was about to make the next change; a task's outcome is announced at once.
    """

    def __init__(self) -> None:
        super().__init__()
        # Called with the loop time of the earliest commit this setting covers.
        self.local: list[Callable[[float], None]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.committed_at: float | None = None
        # Tasks whose COMPLETED was committed since the last notification, which names them
        # (events.announce): a request waiting for one is answered without a read.
        self.completed: list[UUID] = []
        # The NOTIFYs' pace: send_wakeups takes its turns from it, and so does a commit that
        # announces itself (quiet).
        self.pace = Pace(WAKEUP_INTERVAL_SECONDS, WAKEUP_BURST)
        self.noted = 0  # commits noted so far (set and soon): what announced_within covers

    def note(self) -> float:
        self.noted += 1
        if self.committed_at is None:
            self.committed_at = asyncio.get_running_loop().time()
        return self.committed_at

    def set(self, completed: Iterable[UUID] = ()) -> None:
        """`completed`: tasks this commit made COMPLETED."""
        self.completed.extend(completed)
        self.settle(self.note())
        super().set()

    def settle(self, committed_at: float) -> None:
        """What soon() put off is due now; this process's own listeners read at once."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.committed_at = None
        for hook in self.local:
            hook(committed_at)

    def soon(self) -> None:
        self.note()
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(SOON_SECONDS, self.set)

    def quiet(self) -> int | None:
        """For a writer whose next commit can announce itself (a NOTIFY inside it, tasks/complete):
        a mark to pass to announced_within when nothing waits to be announced and the pace has a
        turn free, so that the NOTIFY goes out a round trip sooner than after the commit; None
        otherwise: the commit is announced after it, paced, as usual."""
        if self.is_set() or self.pace.delay() > 0:
            return None
        return self.noted

    def announced_within(self, mark: int) -> None:
        """A commit announced itself (see quiet). The commits noted before `mark` came before it,
        so it announced them too, and what soon() put off is dropped; if others were noted since
        the mark, they may have come after it: they are announced as usual."""
        self.pace.take()
        if self.noted != mark:
            self.set()
            return
        if self.committed_at is not None:
            self.settle(self.committed_at)

    def flush(self) -> None:
        """What `soon()` put off, now."""
        if self.timer is not None:
            self.set()


def is_own_echo(payload: str | None, own_id: str) -> bool:
    """Whether a NOTIFY payload names this process (`own_id`): its own writers' wake-up, which
    woke it in-process already. None (a (re)connected LISTEN) is never one."""
    return bool(own_id) and payload == own_id


class Pace:
    """A token bucket: up to `burst` goes at once, then one per `interval`. An idle process acts
    at once; a busy one coalesces what arrives meanwhile into the next turn."""

    def __init__(self, interval: float, burst: int) -> None:
        self.interval, self.burst = interval, burst
        self.tokens, self.updated = float(burst), 0.0

    def delay(self) -> float:
        """Seconds until the next turn may go (0: now)."""
        now = asyncio.get_running_loop().time()
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) / self.interval)
        self.updated = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) * self.interval

    async def turn(self, stop: asyncio.Event) -> bool:
        """Wait for a turn and take it; False if `stop` was set first."""
        while (delay := self.delay()) > 0:
            if await wait_for(stop, delay):
                return False
        self.take()
        return True

    def take(self) -> None:
        """Count a turn taken (by `turn`, or after checking `delay`)."""
        self.tokens -= 1


async def send_wakeups(pool: asyncpg.Pool, pending: AfterCommit, notify: Notify, stop: asyncio.Event) -> None:
    """Call `notify` whenever `pending` is set, paced (WAKEUP_BURST, WAKEUP_INTERVAL_SECONDS),
    and once more at `stop` if it is set then."""
    while True:
        await wait_any((stop, pending), 5.0)
        if pending.is_set():
            await pending.pace.turn(stop)  # (at `stop` at once: the last one goes out without delay)
            pending.clear()  # what was set while waiting for the turn goes out with this one
            completed, pending.completed = pending.completed, []
            try:
                async with pool.acquire() as conn:
                    await notify(conn, completed)
            except db.UNAVAILABLE_ERRORS:
                pass  # the listeners' own fallbacks (polling, reads on reconnect) cover it
        if stop.is_set():
            return


@contextlib.asynccontextmanager
async def sending(name: str, pool: asyncpg.Pool, notify: Notify) -> AsyncIterator[AfterCommit]:
    """An event for writers to set after committing, turned into `notify` calls until the block
    ends (the last one included)."""
    pending, done = AfterCommit(), asyncio.Event()
    task = asyncio.create_task(supervised(name, lambda: send_wakeups(pool, pending, notify, done), done))
    try:
        yield pending
    finally:
        pending.flush()
        done.set()
        await task
