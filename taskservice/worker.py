"""The worker: consumes task messages, runs handlers under a lease, records outcomes.

A message is acked as soon as the claim (with its lease) is durably committed: from
then on the database owns recovery (heartbeat + reaper), so a 2-hour task never
trips RabbitMQ's consumer timeout. An idle worker's lone claim commits without
waiting for the WAL flush, and its message is acked once a later commit has
flushed it (ack_once_flushed). For the same reason a message is handled, and
its attempt run, in a task the worker owns, never in the task aio-pika gives the
delivery (its channel cancels that one when the connection drops): losing the
broker stops the intake, never an attempt.

Leases are renewed from a thread of their own (taskservice.heartbeat), so a handler
that blocks the event loop cannot let its lease run out. Handlers run as their kind
says (taskservice.executors): on the loop, in a thread, or in a child process.
"""

import asyncio
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from taskservice import broker, db, events, executors, limits, metrics, outbox, progress, tasks, wakeups
from taskservice.batching import Batcher
from taskservice.handlers import HandlerContext, load_registry
from taskservice.heartbeat import Heartbeat
from taskservice.kinds import Kind
from taskservice.lifecycle import supervised
from taskservice.logs import log_context
from taskservice.settings import Settings

log = logging.getLogger(__name__)

# After cancelling the handlers at shutdown, how long to wait for them to hand their tasks back.
SHUTDOWN_HAND_BACK_SECONDS = 10.0
# How long a delivery that finds every slot taken waits for one before it is requeued (Intake).
HOLD_SECONDS = 0.25
# An attempt whose claim committed without the WAL flush and that runs longer than this has its
# claim flushed by a commit of its own, then its message acked (ack_once_flushed).
ACK_FLUSH_SECONDS = 0.1
# The session of the worker's pool: each statement planned once per connection (the worker runs
# the same few statements all day; planning each call, trigger statements included, took a
# sizeable share of its PostgreSQL CPU), with index scans only, so a plan settled on while the
# tables were small stays right as they grow. With other scans allowed, a generic plan of the
# completion made on an empty table read the whole table for every completion thereafter.
SESSION = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off", "enable_bitmapscan": "off"}


class AttemptTimedOut(Exception):
    pass


@dataclass
class Attempt:
    """A running handler, and why it was stopped, if it was."""
    task: asyncpg.Record
    handler_task: asyncio.Task
    # "cancel" (a client asked), "shutdown" (this worker is stopping) or "lost" (the
    # lease went to the reaper, so another attempt may already be running).
    stop_reason: str | None = None
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class GroupWrites:
    """The worker's two hot writes, each made for every attempt that reaches it at the same
    time in one statement and one commit (taskservice.batching)."""
    claims: Batcher[tuple[UUID, int], asyncpg.Record | None]  # (task id, outbox id) -> task or None
    completions: Batcher[tuple[UUID, int, Any], asyncpg.Record | None]  # (task id, attempt, result)


def group_writes(pool: asyncpg.Pool, settings: Settings, committed: wakeups.AfterCommit,
                 limited_kinds: frozenset[str] = frozenset(),
                 running: Mapping[UUID, "Attempt"] | None = None) -> GroupWrites:
    async def claim(messages: list[tuple[UUID, int]]) -> list[asyncpg.Record | None]:
        # An idle worker's lone claim skips the WAL flush (0.3-0.45 ms here), which its ack then
        # waits for (ack_once_flushed). A busy worker's claims share their flushes anyway, and
        # acked at once, their messages leave the prefetch window to the next deliveries.
        unflushed = len(messages) == 1 and running is not None and not running
        async with pool.acquire() as conn:
            claimed = await tasks.claim(conn, messages, settings.worker_id, settings.lease_seconds,
                                        sorted(limited_kinds), unflushed)
            rest = [message for message, row in zip(messages, claimed, strict=True) if row is None]
            if not limited_kinds or not rest:
                return claimed
            # Those of limited kinds (or stale, or not claimable): within their kinds' limits.
            async with conn.transaction():
                await limits.lock(conn, [task_id for task_id, _ in rest])
                limited = iter(await limits.claim(conn, rest, settings.worker_id, settings.lease_seconds,
                                                  settings.kind_limit_retry_seconds))
        return [row if row is not None else next(limited) for row in claimed]

    async def complete(attempts: list[tuple[UUID, int, Any]]) -> list[asyncpg.Record | None]:
        # An idle worker's completions announce themselves in their commit (AfterCommit.quiet).
        mark = committed.quiet() if len(attempts) <= events.ANNOUNCED_COMPLETIONS else None
        async with pool.acquire() as conn:
            rows = await tasks.complete(conn, attempts, settings.worker_id, None if mark is None else "")
        if mark is not None and any(row is not None and row["announced"] for row in rows):
            committed.announced_within(mark)
        return rows

    # At most one slot's worth each: the worker never holds more attempts than that.
    return GroupWrites(claims=Batcher(claim, settings.worker_concurrency),
                       completions=Batcher(complete, settings.worker_concurrency))


def retry_delay(settings: Settings, attempt: int) -> float:
    """Exponential backoff with jitter: about base·2^(attempt-1), capped."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)


def stop_attempt(running: Mapping[UUID, Attempt], task_id: UUID, reason: str) -> None:
    attempt = running.get(task_id)
    if attempt is not None and attempt.stop_reason is None:
        attempt.stop_reason = reason
        attempt.handler_task.cancel()


def on_cancel_notify(running: Mapping[UUID, Attempt], payload: str | None) -> None:
    if payload is None:
        return  # (re)connected: the heartbeat catches requests missed meanwhile
    try:
        task_id = UUID(payload)
    except ValueError:
        return
    if task_id in running:
        log.info("cancel requested for running task %s", task_id, extra={"task_id": payload})
        stop_attempt(running, task_id, "cancel")


def handler_outcome(attempt: Attempt) -> str:
    """How the handler ended: completed, failed, timeout or cancelled (by a client or a shutdown)."""
    if attempt.handler_task.cancelled():
        return "cancelled"
    exc = attempt.handler_task.exception()
    if exc is None:
        return "completed"
    return "timeout" if isinstance(exc, AttemptTimedOut) else "failed"


async def call_handler(kind: Kind, task: asyncpg.Record, ctx: HandlerContext) -> Any:
    timeout = task["timeout_seconds"]
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await executors.run(kind, tasks.public(task), ctx)
    except TimeoutError as exc:
        if deadline.expired():
            raise AttemptTimedOut(f"timed out after {timeout}s") from exc
        raise  # the handler's own TimeoutError (a slow HTTP call, say): an ordinary failure


# A NUL escape in encoded JSON: "\u0000" after an even number of backslashes.
JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def unstorable_result(result: Any, max_bytes: int) -> str | None:
    """Why a handler's result cannot be stored as the task's `result`, or None if it can."""
    try:
        encoded = orjson.dumps(result)
    except TypeError as exc:
        return f"handler result is not JSON: {exc}"
    if len(encoded) > max_bytes:
        # Refused rather than stored: one huge result bloats the table and every read of the task.
        return f"handler result is {len(encoded)} bytes, more than MAX_RESULT_BYTES={max_bytes}"
    if JSON_NUL.search(encoded):
        return "handler result contains a NUL character, which PostgreSQL's jsonb cannot store"
    return None


def attempt_error(attempt: Attempt, refusal: str | None) -> str:
    """Why an attempt that was not cancelled on purpose failed, as the task's `error` records it."""
    if attempt.handler_task.cancelled():
        # The handler raised CancelledError on its own: a failure like any other,
        # not a hand back (which would not count the attempt and retry forever).
        return "handler was cancelled (it raised CancelledError)"
    exc = attempt.handler_task.exception()
    if exc is None:
        return refusal  # the handler returned a result that cannot be stored
    return str(exc) if isinstance(exc, AttemptTimedOut) else f"{type(exc).__name__}: {exc}"


async def write_outcome(pool: asyncpg.Pool, settings: Settings, writes: GroupWrites,
                        attempt: Attempt, retry_in: float) -> asyncpg.Record | None:
    """The one guarded write that ends the attempt; None when the attempt is no longer ours."""
    task, handler_task = attempt.task, attempt.handler_task
    key = (task["id"], task["attempts"], settings.worker_id)
    refusal = None
    if not handler_task.cancelled() and handler_task.exception() is None:
        result = handler_task.result()
        refusal = unstorable_result(result, settings.max_result_bytes)
        if refusal is None:
            # The common case, batched with the other attempts finishing now.
            return await writes.completions.submit((task["id"], task["attempts"], result))
    async with pool.acquire() as conn:
        if handler_task.cancelled() and attempt.stop_reason == "cancel":
            row = await tasks.mark_cancelled(conn, *key)
        elif handler_task.cancelled() and attempt.stop_reason == "shutdown":
            row = await tasks.hand_back(conn, *key)
            if row is not None and row["status"] == "PENDING":
                await outbox.notify_due(conn)  # its fresh outbox row is due now
        else:
            row = await tasks.fail_attempt(conn, *key, attempt_error(attempt, refusal)[:10_000], retry_in,
                                           retryable=True)
    return row


def log_outcome(attempt: Attempt, status: str, retry_in: float, max_result_bytes: int) -> None:
    """One line per recorded outcome, saying which it was: completed, cancelled, handed back,
    failed and to be retried (WARNING), or failed for good (ERROR); failures with their error,
    and the handler's traceback when it raised."""
    task, handler_task = attempt.task, attempt.handler_task
    where = f"task {task['id']} attempt {task['attempts']} of {task['max_attempts']}"
    context = {"task_id": str(task["id"]), "attempt": task["attempts"]}
    if status == "COMPLETED":
        log.info("%s: COMPLETED", where, extra={**context, "outcome": "completed"})
        return
    if handler_task.cancelled() and attempt.stop_reason == "cancel":
        log.info("%s: cancelled on request; the task is %s", where, status,
                 extra={**context, "outcome": "cancelled"})
        return
    if handler_task.cancelled() and attempt.stop_reason == "shutdown":
        log.info("%s: handed back as the worker stops (the attempt does not count); the task is %s",
                 where, status, extra={**context, "outcome": "handed_back"})
        return
    exc = None if handler_task.cancelled() else handler_task.exception()
    refusal = None if exc is not None or handler_task.cancelled() else \
        unstorable_result(handler_task.result(), max_result_bytes)
    error = attempt_error(attempt, refusal)
    what = error if isinstance(exc, AttemptTimedOut) else f"failed: {error}"
    # The traceback of the handler's own exception, not of the timeout that stopped it.
    exc_info = exc if exc is not None and not isinstance(exc, AttemptTimedOut) else None
    if status == "PENDING":
        log.warning("%s %s; it will be retried in %s", where, what, format_delay(retry_in), exc_info=exc_info,
                    extra={**context, "outcome": "retry", "retry_in_seconds": round(retry_in, 3)})
    else:
        log.error("%s %s; no attempts left, the task is %s", where, what, status, exc_info=exc_info,
                  extra={**context, "outcome": "failed"})


def format_delay(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"


async def record_outcome(pool: asyncpg.Pool, settings: Settings, writes: GroupWrites, attempt: Attempt,
                         committed: wakeups.AfterCommit) -> bool:
    """Write the outcome, retrying while the database is unreachable (the caller keeps
    renewing the lease meanwhile); past one lease length the reaper takes over. Sets
    `committed` once the outcome's status change is committed. Whether it was (a synchronous
    commit, so the claim before it is flushed too)."""
    task = attempt.task
    outcome, duration = handler_outcome(attempt), time.perf_counter() - attempt.started
    context = {"task_id": str(task["id"]), "attempt": task["attempts"]}
    if attempt.stop_reason == "lost":
        log.warning("task %s attempt %d: lease lost to the reaper; outcome dropped",
                    task["id"], task["attempts"], extra=context)
        return False
    retry_in = retry_delay(settings, task["attempts"])  # used only if the attempt failed
    give_up_at, delay = time.monotonic() + settings.lease_seconds, 0.5
    while True:
        try:
            row = await write_outcome(pool, settings, writes, attempt, retry_in)
            break
        except db.UNAVAILABLE_ERRORS as exc:
            if time.monotonic() + delay > give_up_at:
                log.error("task %s attempt %d: could not record the outcome (%s); the reaper will "
                          "retry the task", task["id"], task["attempts"], type(exc).__name__, extra=context)
                return False
            log.warning("task %s attempt %d: database unavailable (%s) recording the outcome; retrying",
                        task["id"], task["attempts"], type(exc).__name__, extra=context)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    if row is not None:
        if not row.get("announced"):  # (else its commit announced it: tasks/complete)
            committed.set([task["id"]] if row["status"] == "COMPLETED" else ())
        if outcome == "completed" and row["status"] != "COMPLETED":
            outcome = "failed"  # the handler returned, but its result was refused
        if row["status"] == "PENDING" and outcome != "cancelled":  # (cancelled: a hand back)
            metrics.TASK_RETRIES.labels(task["kind"]).inc()
        metrics.count_transition("IN_PROGRESS", row["status"])
    metrics.HANDLER_DURATION.labels(task["kind"], outcome).observe(duration)
    if row is None:
        log.warning("task %s attempt %d: outcome not recorded, the attempt is no longer ours",
                    task["id"], task["attempts"], extra=context)
        return False
    log_outcome(attempt, row["status"], retry_in, settings.max_result_bytes)
    return True


def progress_writer(pool: asyncpg.Pool, settings: Settings, task: asyncpg.Record) -> progress.Write:
    async def write(fraction: float, message: str | None) -> bool:
        try:
            async with pool.acquire() as conn:
                return await tasks.record_progress(conn, task["id"], task["attempts"], settings.worker_id,
                                                   fraction, message)
        except db.UNAVAILABLE_ERRORS as exc:
            log.debug("progress not recorded: database unavailable (%s)", type(exc).__name__)
            return True  # still ours as far as we know: the next report tries again

    return write


async def run_attempt(pool: asyncpg.Pool, settings: Settings, writes: GroupWrites, registry: Mapping[str, Kind],
                      running: dict[UUID, Attempt], task: asyncpg.Record, committed: wakeups.AfterCommit) -> bool:
    """Run the attempt and record its outcome; whether that was recorded (record_outcome)."""
    kind = registry.get(task["kind"])
    if kind is None:
        async with pool.acquire() as conn:
            row = await tasks.fail_attempt(conn, task["id"], task["attempts"], settings.worker_id,
                                           f"no handler registered for kind {task['kind']!r}", 0,
                                           retryable=False)
        if row is not None:
            committed.set()
            metrics.count_transition("IN_PROGRESS", row["status"])
        log.error("task %s: unknown kind %r", task["id"], task["kind"],
                  extra={"task_id": str(task["id"]), "attempt": task["attempts"]})
        return row is not None
    reporter = progress.Reporter(progress_writer(pool, settings, task), asyncio.get_running_loop())
    ctx = HandlerContext(task_id=task["id"], attempt=task["attempts"], log=log, stopping=threading.Event(),
                         report_progress=reporter.report, parent_results=task["parent_results"] or {})
    attempt = Attempt(task, asyncio.create_task(call_handler(kind, task, ctx)))
    running[task["id"]] = attempt  # until the outcome is written: the heartbeat keeps the lease
    try:
        await asyncio.wait([attempt.handler_task])
        await reporter.finish()  # the last report is written before the outcome, never after
        return await record_outcome(pool, settings, writes, attempt, committed)
    finally:
        del running[task["id"]]


def connected_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@dataclass
class Intake:
    """The attempt slots, and the consumer that fills them.

    Messages are acked once claimed, so RabbitMQ's prefetch does not bound how
    many a busy worker holds. A delivery that finds every slot taken waits for
    one, but only HOLD_SECONDS: short attempts free theirs within milliseconds,
    and passing a slot straight to a waiting delivery spares the consumer
    cancel, re-consume and requeue round trips per task that a full worker
    would otherwise make. When no slot frees in time the worker is busy with
    long attempts: it stops consuming and requeues what it holds, so those
    messages wait in the queue within other workers' reach (and never sit
    unacked past the consumer timeout); it consumes again once a slot frees.
    """
    queues: Sequence[AbstractQueue]  # one channel consumes them all, within the same slots
    on_message: Callable[[AbstractIncomingMessage], Awaitable[None]]
    free: int
    # The broker connection's: set while it is up (taken as up when not given).
    connected: asyncio.Event = field(default_factory=connected_event)
    open: bool = True
    busy: bool = False  # a delivery found no slot within HOLD_SECONDS
    consumer_tags: dict[str, str] = field(default_factory=dict)  # queue name -> its consumer's tag
    waiting: deque[asyncio.Future] = field(default_factory=deque)
    switching: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def take(self) -> bool:
        """A slot for a delivery, at once or the first to free up within HOLD_SECONDS;
        False when none does or the intake is closed."""
        if not self.open:
            return False
        if self.free > 0:
            self.free -= 1
            return True
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        try:
            await asyncio.wait([waiter], timeout=HOLD_SECONDS)
        except asyncio.CancelledError:  # (only a worker giving up on it at exit)
            if waiter.done() and waiter.result() and not self.pass_slot():
                self.free += 1  # the slot it was just handed must not be lost with it
            waiter.cancel()
            raise
        if waiter.done():
            return waiter.result()
        waiter.cancel()  # give_back passes over it
        self.busy = True
        await self.follow()  # stop consuming before the caller requeues, or the message comes straight back
        return False

    def pass_slot(self) -> bool:
        """Hand a freed slot to the first delivery still waiting for one; False when none is."""
        while self.waiting and self.open:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return True
        return False

    async def give_back(self) -> None:
        if self.pass_slot():
            return
        self.free += 1
        if self.busy or len(self.consumer_tags) < len(self.queues):
            self.busy = False
            await self.follow()

    async def close(self) -> None:
        self.open = False
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(False)
        await self.follow()

    async def follow(self) -> None:
        """Consume while open and not busy. While the broker is away it does nothing (the worker
        calls it again on the broker's return): RabbitMQ dropped the consumer with the connection
        and the connection restores the one it had, so a stopping worker need not wait for either."""
        async with self.switching:
            wanted = self.open and not self.busy
            if not self.connected.is_set():
                return
            try:
                async with asyncio.timeout(5):
                    for queue in self.queues:
                        tag = self.consumer_tags.get(queue.name)
                        if wanted and tag is None:
                            self.consumer_tags[queue.name] = await queue.consume(self.on_message)
                        elif not wanted and tag is not None:
                            del self.consumer_tags[queue.name]
                            await queue.cancel(tag)
            except broker.BROKER_ERRORS as exc:
                # The broker is gone; it requeues what we have not acked, and the next
                # slot change tries again.
                log.warning("could not %s consuming (%s)", "start" if wanted else "stop", type(exc).__name__)


async def handle_message(message: AbstractIncomingMessage, pool: asyncpg.Pool, settings: Settings,
                         writes: GroupWrites, registry: Mapping[str, Kind], running: dict[UUID, Attempt],
                         intake: Intake, committed: wakeups.AfterCommit) -> None:
    try:
        task_id, outbox_id = broker.parse_task_message(message.body)
        task_uuid = UUID(task_id)
    except ValueError:
        log.error("unparseable message %s sent to the dead-letter queue", message.message_id)
        await broker.settle(message, "reject")
        return
    if not await intake.take():
        await broker.settle(message, "requeue")  # busy or stopping: another worker (or a free slot later) takes it
        return
    try:
        try:
            task = await writes.claims.submit((task_uuid, outbox_id))
        except Exception as exc:  # unavailable, read-only failover, ...: the message must go back
            log.warning("claim of task %s failed (%s); message requeued", task_id, type(exc).__name__,
                        exc_info=not isinstance(exc, db.UNAVAILABLE_ERRORS))
            await asyncio.sleep(1)
            await broker.settle(message, "requeue")
            return
        # The claim is committed: the database owns the task now, acked or not. A message whose
        # channel closed meanwhile comes back, and whoever receives it claims nothing and acks it.
        # So the attempt starts while the ack is written (awaiting it cost an idle task 0.2-0.3 ms).
        if task is None:
            log.debug("task %s not claimable (cancelled, finished, taken or stale message)", task_id)
            await broker.settle(message, "ack")
            return
        recorded = asyncio.get_running_loop().create_future()  # run_attempt's outcome was recorded
        if task.get("flushed", True):  # (limits.claim's rows always are)
            acked = asyncio.ensure_future(broker.settle(message, "ack"))
        else:
            acked = asyncio.ensure_future(ack_once_flushed(message, pool, settings, task, recorded))
        try:
            committed.soon()  # the claim's IN_PROGRESS event: announced with the outcome, if that is quick
            # From NEW when it beat its dispatcher's PENDING mark after the confirm (taskservice.handoff); the
            # history records the PENDING it passed through all the same, so it is counted as from PENDING.
            metrics.count_transition("PENDING", "IN_PROGRESS")
            # Every log line of the attempt, the handler's included, names the task and attempt.
            with log_context(task_id=task_id, attempt=task["attempts"]):
                recorded.set_result(await run_attempt(pool, settings, writes, registry, running, task, committed))
        finally:
            if not recorded.done():
                recorded.set_result(False)
            await acked
    finally:
        await intake.give_back()


async def ack_once_flushed(message: AbstractIncomingMessage, pool: asyncpg.Pool, settings: Settings,
                           task: asyncpg.Record, recorded: asyncio.Future) -> None:
    """Ack the message of a claim committed without waiting for the WAL flush, once the claim is
    flushed: by its attempt's recorded outcome (a later synchronous commit) if `recorded` says so
    within ACK_FLUSH_SECONDS, else by a write of its own to the running attempt's row, which also
    finds whether the claim is there. Until then a database crash could lose the claim, so RabbitMQ
    keeps the message (it comes back if this worker's channel closes). A message whose claim was
    lost, or could not be checked, goes back to the queue: whoever receives it claims the task
    again, or, finding it claimed or finished, acks it."""
    done, _ = await asyncio.wait([recorded], timeout=ACK_FLUSH_SECONDS)
    if not (done and recorded.result()):
        try:
            async with pool.acquire() as conn:
                claimed = await tasks.flush_claim(conn, task["id"], task["attempts"], settings.worker_id)
        except Exception as exc:  # unavailable, read-only after a failover, ...
            log.warning("task %s: could not flush the claim of attempt %d (%s); its message goes back to the "
                        "queue", task["id"], task["attempts"], type(exc).__name__,
                        exc_info=not isinstance(exc, db.UNAVAILABLE_ERRORS))
            claimed = None
        if not claimed:
            if claimed is not None:
                log.info("task %s: the claim of attempt %d is not there or has moved on (a database crash "
                         "may have lost it); its message goes back to the queue", task["id"], task["attempts"])
            await broker.settle(message, "requeue")
            return
    await broker.settle(message, "ack")


def stop_held(running: Mapping[UUID, Attempt], task_id: UUID, attempt_number: int, reason: str) -> None:
    """What the heartbeat found about an attempt it renews: a cancel request, or a lease it
    could not renew (the attempt finished meanwhile, or the reaper took the task)."""
    attempt = running.get(task_id)
    if attempt is None or attempt.task["attempts"] != attempt_number or attempt.handler_task.done():
        return
    if reason == "lost":
        # Our lease had run out, so another attempt may be running; stop duplicating its work.
        log.warning("task %s: lease lost; stopping the attempt", task_id, extra={"task_id": str(task_id)})
    stop_attempt(running, task_id, reason)


def broker_connection_name(settings: Settings) -> str:
    """What RabbitMQ shows for this worker's connection: an operator can tell the workers apart."""
    return f"taskservice worker {settings.worker_id}"


async def run_worker(pool: asyncpg.Pool, settings: Settings, registry: Mapping[str, Kind],
                     committed: wakeups.AfterCommit, stop: asyncio.Event) -> None:
    """Consume until `stop`; then let running attempts finish within the grace period and
    hand back the rest. Sets `committed` after committing status changes (the process
    announces them to streams)."""
    declared = limits.declared(registry, settings)
    async with pool.acquire() as conn:
        await limits.declare(conn, declared, list(registry))
    if declared:
        log.info("limits per kind: %s", limits.describe(declared))
    running: dict[UUID, Attempt] = {}
    inflight: set[asyncio.Task] = set()
    background = [
        asyncio.create_task(supervised("LISTEN task_cancel", lambda: db.listen(
            settings.database_url, "task_cancel", lambda payload: on_cancel_notify(running, payload), stop),
            stop)),
    ]
    heartbeat = Heartbeat(settings, running, lambda *held: stop_held(running, *held))
    heartbeat.start()
    intake: Intake | None = None
    writes = group_writes(pool, settings, committed, frozenset(declared), running)

    def own(work: Awaitable[None]) -> None:
        task = asyncio.create_task(work)
        inflight.add(task)
        task.add_done_callback(forget)

    def forget(task: asyncio.Task) -> None:
        inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("handling a message failed", exc_info=task.exception())

    async def on_message(message: AbstractIncomingMessage) -> None:
        # The delivery's own task belongs to its channel, which cancels it when the connection
        # drops; an attempt must outlive that, so the message is handled in a task of ours.
        own(handle_message(message, pool, settings, writes, registry, running, intake, committed))

    broker_lost_at: float | None = None

    def on_broker_lost(_connection: object, exc: BaseException | None) -> None:
        nonlocal broker_lost_at
        # (Called again for every failed reconnect: the loss is logged once.)
        if broker_lost_at is None and not stop.is_set():
            broker_lost_at = time.monotonic()
            log.warning("lost the RabbitMQ connection (%s: %s); attempts running: %d (they carry on); "
                        "consuming resumes once it is back", type(exc).__name__, exc, len(running))

    def on_broker_back(_connection: object) -> None:
        nonlocal broker_lost_at
        away = time.monotonic() - broker_lost_at if broker_lost_at is not None else 0.0
        broker_lost_at = None
        log.info("RabbitMQ connection restored after %.1fs; consuming again; attempts running: %d",
                 away, len(running))
        if intake is not None:
            # The connection restores the consumer it had; one that failed to start or stop
            # while the broker was away is settled now.
            own(intake.follow())

    connection = None
    try:
        connection = await broker.connect(settings, stop, broker_connection_name(settings))
        if connection is None:
            return  # stopped before the broker answered
        connection.close_callbacks.add(on_broker_lost)
        connection.reconnect_callbacks.add(on_broker_back)
        channel = await connection.channel()
        # Prefetch no more than we can run: a large prefetch would take low-priority
        # messages before high-priority ones arrive (docs/design.md, Known pitfalls).
        await channel.set_qos(prefetch_count=settings.worker_concurrency)
        topology = await broker.declare_topology(channel, settings, settings.worker_queues)
        intake = Intake(list(topology.queues.values()), on_message, free=settings.worker_concurrency,
                        connected=connection.connected)
        await intake.follow()
        log.info("worker %s consuming queues %s (%s) with concurrency %d", settings.worker_id,
                 ", ".join(topology.queues), ", ".join(q.name for q in topology.queues.values()),
                 settings.worker_concurrency)
        await stop.wait()
        await intake.close()
        log.info("worker stopping: %d attempts running", len(running))
        if inflight:
            await asyncio.wait(list(inflight), timeout=settings.shutdown_grace_seconds)
        for task_id in list(running):
            stop_attempt(running, task_id, "shutdown")
        if inflight:
            _, stuck = await asyncio.wait(list(inflight), timeout=SHUTDOWN_HAND_BACK_SECONDS)
            if stuck:
                log.error("%d attempts did not stop; their leases will run out and the reaper "
                          "will hand them to another worker", len(stuck))
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        await broker.close(connection)
        for work in inflight:  # attempts that ignored their cancellation (logged above)
            work.cancel()
        await asyncio.gather(*inflight, return_exceptions=True)
        await heartbeat.stop()
        log.info("worker stopped")


async def main(settings: Settings, stop: asyncio.Event) -> None:
    """The standalone worker process."""
    registry = load_registry(settings.handler_modules)
    executors.preload(registry.values())
    pool = await db.create_pool(settings, **SESSION)
    try:
        async with (metrics.metrics_server(settings.host, settings.metrics_port),
                    wakeups.sending("stream announcements", pool, events.announce) as committed):
            await run_worker(pool, settings, registry, committed, stop)
    finally:
        await pool.close()
