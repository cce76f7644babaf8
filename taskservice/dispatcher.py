"""The dispatcher: drains the outbox into RabbitMQ, reaps attempts whose lease ran out,
re-dispatches PENDING tasks whose message RabbitMQ lost, fires due schedules, delivers completion
webhooks (`taskservice.callbacks`) and runs the maintenance loop (`taskservice.maintenance`:
retention, idempotency key expiry).

Two fronts call `run_dispatcher`: a background task of the API process
(`taskservice.api.app.embedded_dispatcher`) and the standalone process (`main`).
"""

import asyncio
import dataclasses
import functools
import logging
import time
from datetime import timedelta

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from taskservice import broker, callbacks, db, events, maintenance, metrics, outbox, schedules, tasks, wakeups
from taskservice.handoff import Handoff, Marks
from taskservice.lifecycle import supervised, wait_any, wait_for
from taskservice.settings import Settings

log = logging.getLogger(__name__)

REAP_BATCH_SIZE = 100
PUBLISH_RETRY_SECONDS = 2.0
# How long a dispatcher holds the outbox rows it is publishing; past the publish timeout
# (broker.PUBLISH_TIMEOUT_SECONDS), so only a dispatcher that died gives its rows up.
PUBLISH_LEASE_SECONDS = 30.0
BACKLOG_REFRESH_SECONDS = 5.0
REDISPATCH_BATCH_SIZE = 1000
REDISPATCH_MAX_INTERVAL_SECONDS = 30.0
QUEUE_DEPTH_TIMEOUT_SECONDS = 5.0
SCHEDULE_BATCH_SIZE = 100
# The longest the schedule loop sleeps: how late it may notice a schedule created or
# changed meanwhile (it otherwise wakes when the next known one is due).
SCHEDULE_POLL_SECONDS = 1.0
SCHEDULE_PARK_SECONDS = 3600
# Past the due time when the loop wakes for a schedule: a timer that fires a little early
# would find it not yet due and sleep again.
SCHEDULE_WAKE_MARGIN_SECONDS = 0.005


class PublishFailed(Exception):
    def __init__(self, outbox_ids: list[int], reason: str) -> None:
        super().__init__(reason)
        self.outbox_ids = outbox_ids
        self.reason = reason


async def claim_pool(settings: Settings) -> asyncpg.Pool:
    """The one connection the outbox claim runs on, with outbox.CLAIM_SESSION's settings: the claim
    is then one statement, where setting them per transaction would take three more round trips
    on the way from a create to its message. Connected when first used."""
    return await db.create_pool(dataclasses.replace(settings, db_pool_min=0, db_pool_max=1),
                                **outbox.CLAIM_SESSION)


async def drain_once(pool: asyncpg.Pool, claims: asyncpg.Pool, publisher: broker.Publisher, settings: Settings,
                     committed: wakeups.AfterCommit) -> int:
    """Publish one batch of due outbox rows; how many were published. Sets `committed` once
    their tasks' PENDING events are committed (before the publish).

    The rows are leased (and their tasks marked PENDING) in one short statement on `claims`
    (claim_pool), published with no transaction open, then marked published. Held through
    the publisher confirms, the claim's task locks made every worker that received a
    message wait for the whole batch's confirms. If RabbitMQ does not confirm
    every message, the rows are due again after PUBLISH_RETRY_SECONDS.
    """
    async with claims.acquire() as conn:
        rows = await outbox.claim_due(conn, settings.dispatch_batch_size, PUBLISH_LEASE_SECONDS)
    if not rows:
        return 0
    committed.soon()  # PENDING: announced with the worker's claim, usually
    metrics.count_transition("NEW", "PENDING", len({row["task_id"] for row in rows if row["dispatched"]}))
    await publish_confirmed(publisher, rows)
    return await mark_published(pool, rows)


async def publish_handed_off(pool: asyncpg.Pool, publisher: broker.Publisher, marks: Marks,
                             rows: list[dict]) -> None:
    """Publish outbox rows that creates of this process leased to it (taskservice.handoff), and
    put off marking them published (`marks`) once RabbitMQ confirms them. Nothing else runs
    beside the publish: a statement started with it delayed its frames. Rows not confirmed are
    due again after PUBLISH_RETRY_SECONDS, for the claim."""
    try:
        await publish_confirmed(publisher, rows)
    except PublishFailed as exc:
        await record_publish_error(pool, exc)
        return
    metrics.DISPATCH_BATCH_SIZE.observe(len(rows))
    marks.add(rows)


async def mark_handed_off(claims: asyncpg.Pool, committed: wakeups.AfterCommit, rows: list[dict]) -> None:
    """Confirmed handed-over rows published and their tasks PENDING, in one statement on `claims`."""
    try:
        async with claims.acquire() as conn:
            moved = await outbox.mark_handed_off(conn, [row["id"] for row in rows])
    except db.UNAVAILABLE_ERRORS as exc:  # published, not marked: due again when the lease runs out
        log.warning("dispatcher: database unavailable (%s) marking %d handed-over outbox rows published",
                    type(exc).__name__, len(rows))
        return
    if moved:
        committed.soon()
    metrics.count_transition("NEW", "PENDING", moved)


async def publish_confirmed(publisher: broker.Publisher, rows: list) -> None:
    """Publish leased outbox rows and wait for the confirms; PublishFailed if RabbitMQ did not
    confirm every message."""
    # No pool connection held through the confirms: the embedded dispatcher shares the API's pool.
    started = time.perf_counter()
    try:
        await broker.publish_routed(publisher, rows)
    except Exception as exc:  # whatever the broker did, the rows must come due again
        metrics.PUBLISH_FAILURES.inc()
        raise PublishFailed([row["id"] for row in rows], f"{type(exc).__name__}: {exc}") from exc
    metrics.PUBLISH_DURATION.observe(time.perf_counter() - started)


async def mark_published(pool: asyncpg.Pool, rows: list) -> int:
    async with pool.acquire() as conn:
        await outbox.mark_published(conn, [row["id"] for row in rows])
    metrics.DISPATCH_BATCH_SIZE.observe(len(rows))
    log.debug("published %d outbox rows", len(rows))
    return len(rows)


async def drain_forever(pool: asyncpg.Pool, claims: asyncpg.Pool, publisher: broker.Publisher, settings: Settings,
                        wake: asyncio.Event, committed: wakeups.AfterCommit, stop: asyncio.Event) -> None:
    # Woken by every create in its own process, a busy dispatcher would claim a few rows per
    # round trip: paced, the rows committed meanwhile go together.
    pace = wakeups.Pace(wakeups.WAKEUP_INTERVAL_SECONDS, wakeups.WAKEUP_BURST)
    while not stop.is_set():
        if not await pace.turn(stop):
            return
        wake.clear()
        try:
            published = await drain_once(pool, claims, publisher, settings, committed)
        except PublishFailed as exc:
            await record_publish_error(pool, exc)
            await wait_for(stop, PUBLISH_RETRY_SECONDS)
            continue
        except db.UNAVAILABLE_ERRORS as exc:
            log.warning("dispatcher: database unavailable (%s)", type(exc).__name__)
            await wait_for(stop, 1.0)
            continue
        if published < settings.dispatch_batch_size:
            # NOTIFY from a new outbox row wakes us at once; polling catches
            # scheduled rows coming due and any notification that was lost.
            await wait_any((stop, wake), settings.dispatch_poll_seconds)


async def record_publish_error(pool: asyncpg.Pool, failure: PublishFailed) -> None:
    """Log the failure and make its rows due again after PUBLISH_RETRY_SECONDS."""
    log.warning("publishing %d outbox rows failed (%s); retrying in %.0fs",
                len(failure.outbox_ids), failure.reason, PUBLISH_RETRY_SECONDS)
    try:
        async with pool.acquire() as conn:
            await outbox.record_publish_error(conn, failure.outbox_ids, failure.reason[:1000],
                                              PUBLISH_RETRY_SECONDS)
    except db.UNAVAILABLE_ERRORS:
        pass  # they come due again when their lease runs out


async def reap_forever(pool: asyncpg.Pool, settings: Settings, wake: asyncio.Event,
                       committed: wakeups.AfterCommit, stop: asyncio.Event) -> None:
    while not stop.is_set():
        rescued = []
        try:
            async with pool.acquire() as conn:
                rescued = await tasks.reap_expired(conn, REAP_BATCH_SIZE)
        except db.UNAVAILABLE_ERRORS as exc:
            log.warning("reaper: database unavailable (%s)", type(exc).__name__)
        if rescued:
            committed.set()
        for row in rescued:
            metrics.TASK_RESCUES.labels(row["status"]).inc()
            metrics.count_transition("IN_PROGRESS", row["status"])
            log.warning("rescued task %s after its lease expired on attempt %d: now %s",
                        row["id"], row["attempts"], row["status"],
                        extra={"task_id": str(row["id"]), "attempt": row["attempts"]})
        if any(row["status"] == "PENDING" for row in rescued):
            wake.set()  # their fresh outbox rows are due now
        if len(rescued) < REAP_BATCH_SIZE:
            await wait_for(stop, settings.reap_interval_seconds)


async def redispatch_lost_once(pool: asyncpg.Pool, connection: AbstractRobustConnection,
                               settings: Settings) -> int:
    """Give PENDING tasks whose message is gone a fresh outbox row; how many.

    Per task queue, both conditions are needed. Its queue holding no ready message alone is normal: a
    message delivered a moment ago is with a worker that is claiming its task. A publish
    long ago alone is normal too, behind a deep backlog; re-dispatching then would double
    the backlog. Together they mean the message is lost: workers ack right after their
    claim commits, so with nothing left to deliver, a task still PENDING that long after
    its publish will never be claimed.
    """
    async with pool.acquire() as conn:
        waiting = {row["queue"] for row in await tasks.count_active_by_queue(conn) if row["status"] == "PENDING"}
    empty = []
    for queue in sorted(waiting):
        try:
            async with asyncio.timeout(QUEUE_DEPTH_TIMEOUT_SECONDS):
                depth = await broker.queue_depth(connection, broker.queue_name(settings, queue))
        except broker.BROKER_ERRORS as exc:  # (NOT_FOUND too: the publisher has not declared it yet)
            log.info("lost-message sweep skipped queue %s: depth unknown (%s)", queue, type(exc).__name__)
            continue
        if not depth:
            empty.append(queue)
    if not empty:
        return 0
    async with pool.acquire() as conn:
        return await tasks.redispatch_lost(conn, settings.pending_redispatch_seconds, REDISPATCH_BATCH_SIZE, empty)


async def redispatch_lost_forever(pool: asyncpg.Pool, settings: Settings, wake: asyncio.Event,
                                  stop: asyncio.Event) -> None:
    """Sweep for lost messages every quarter of PENDING_REDISPATCH_SECONDS (at most every 30 s),
    over a broker connection of its own: a sweep never disturbs the publisher's channel."""
    connection = await broker.connect(settings, stop)
    if connection is None:
        return  # stopped before the broker answered
    interval = min(REDISPATCH_MAX_INTERVAL_SECONDS, settings.pending_redispatch_seconds / 4)
    try:
        while not await wait_for(stop, interval):
            try:
                redispatched = await redispatch_lost_once(pool, connection, settings)
            except db.UNAVAILABLE_ERRORS as exc:
                log.warning("lost-message sweep: database unavailable (%s)", type(exc).__name__)
                continue
            if redispatched:
                metrics.TASKS_REDISPATCHED.inc(redispatched)
                log.warning("re-dispatched %d PENDING tasks whose message was lost (queue empty, published "
                            "more than %gs ago)", redispatched, settings.pending_redispatch_seconds)
                wake.set()  # their fresh outbox rows are due now
    finally:
        await broker.close(connection)


async def fire_due_schedules(pool: asyncpg.Pool) -> tuple[int, list[asyncpg.Record]]:
    """Fire one batch of due schedules: how many were due, and the tasks created.

    One transaction claims them (other dispatchers skip them), creates their tasks with their
    outbox rows and moves each to its first tick after now: each tick fires once, however
    many dispatchers run, and ticks missed while none ran fire once together.
    """
    async with pool.acquire() as conn, conn.transaction():
        due = await schedules.claim_due(conn, SCHEDULE_BATCH_SIZE)
        if not due:
            return 0, []
        created = await schedules.fire(conn, [firing_or_parked(row) for row in due])
    return len(due), created


def firing_or_parked(row: asyncpg.Record) -> schedules.Firing:
    """The schedule's firing; one whose spec no longer makes ticks (its time zone left the
    system's database) is put off for SCHEDULE_PARK_SECONDS instead of stopping the others."""
    try:
        return schedules.firing(row, row["now"])
    except schedules.InvalidSchedule as exc:
        log.error("schedule %s cannot fire (%s: %s); trying again in %ds", row["id"], exc.field, exc,
                  SCHEDULE_PARK_SECONDS)
        return schedules.Firing(row["id"], None, row["now"] + timedelta(seconds=SCHEDULE_PARK_SECONDS))


async def fire_schedules_forever(pool: asyncpg.Pool, wake: asyncio.Event, committed: wakeups.AfterCommit,
                                 stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            due, created = await fire_due_schedules(pool)
            async with pool.acquire() as conn:
                until_due = await schedules.seconds_until_due(conn)
        except db.UNAVAILABLE_ERRORS as exc:
            log.warning("schedules: database unavailable (%s)", type(exc).__name__)
            await wait_for(stop, 1.0)
            continue
        if created:
            wake.set()  # their outbox rows are due now
            committed.soon()
            metrics.count_transition(None, "NEW", len(created))
        for row in created:
            metrics.TASKS_CREATED.labels(row["priority"]).inc()
            log.info("schedule %s fired task %s for %s", row["schedule_id"], row["id"],
                     row["scheduled_for"].isoformat(), extra={"task_id": str(row["id"])})
        if due < SCHEDULE_BATCH_SIZE:
            # A due schedule left behind is locked by another dispatcher or an edit: a moment's pause.
            pause = SCHEDULE_POLL_SECONDS if until_due is None else max(until_due, 0.05)
            await wait_for(stop, min(SCHEDULE_POLL_SECONDS, pause + SCHEDULE_WAKE_MARGIN_SECONDS))


async def measure_backlog_forever(pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """Refresh the outbox backlog gauges every BACKLOG_REFRESH_SECONDS."""
    while not stop.is_set():
        try:
            async with pool.acquire() as conn:
                backlog = await outbox.backlog(conn)
        except db.UNAVAILABLE_ERRORS:
            pass  # the gauges keep their last values until the database answers again
        else:
            metrics.OUTBOX_BACKLOG.set(backlog["due"])
            metrics.OUTBOX_OLDEST_DUE_AGE.set(backlog["oldest_due_age_seconds"])
        await wait_for(stop, BACKLOG_REFRESH_SECONDS)


async def run_dispatcher(pool: asyncpg.Pool, settings: Settings, committed: wakeups.AfterCommit,
                         stop: asyncio.Event, wake: asyncio.Event | None = None, own_id: str = "",
                         handoff: Handoff | None = None) -> None:
    """Drain the outbox, reap expired leases, re-dispatch lost messages, fire due schedules, deliver
    callbacks and keep the tables trim until `stop` is set.
    Sets `committed` after committing status changes (the process announces them to streams).
    `wake` (set by the process's own writers, or by NOTIFY outbox_due) drains the outbox at once;
    a NOTIFY whose payload is `own_id` came from those writers, who set `wake` already.
    `handoff`: the process's creates hand their outbox rows over there while it publishes."""
    wake = wake or asyncio.Event()
    handoff = handoff or Handoff()

    def on_outbox_due(payload: str | None) -> None:
        if not wakeups.is_own_echo(payload, own_id):
            wake.set()

    background = [asyncio.create_task(supervised(name, loop, stop)) for name, loop in (
        ("LISTEN outbox_due", lambda: db.listen(settings.database_url, "outbox_due", on_outbox_due, stop)),
        ("reaper", lambda: reap_forever(pool, settings, wake, committed, stop)),
        ("lost-message sweeper", lambda: redispatch_lost_forever(pool, settings, wake, stop)),
        ("maintenance", lambda: maintenance.maintain_forever(pool, settings, stop)),
        ("schedules", lambda: fire_schedules_forever(pool, wake, committed, stop)),
        ("backlog gauge", lambda: measure_backlog_forever(pool, stop)),
        ("callback delivery", lambda: callbacks.deliver_forever(pool, settings, stop)),
    )]
    try:
        await supervised("outbox publisher",
                         lambda: publish_forever(pool, settings, wake, committed, handoff, stop), stop)
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        log.info("dispatcher stopped")


async def publish_forever(pool: asyncpg.Pool, settings: Settings, wake: asyncio.Event,
                          committed: wakeups.AfterCommit, handoff: Handoff, stop: asyncio.Event) -> None:
    """Connect to RabbitMQ, declare the topology and drain the outbox until `stop`, taking the rows
    handed over meanwhile; each task queue is declared the first time a message goes to it
    (broker.publish_routed)."""
    connection = await broker.connect(settings, stop)
    if connection is None:
        return  # stopped before the broker answered
    claims = await claim_pool(settings)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        topology = await broker.declare_topology(channel, settings)
        publisher = broker.Publisher(channel, topology.exchange, settings, declared=set(topology.queues))
        connection.reconnect_callbacks.add(publisher.forget_declared)
        log.info("dispatcher publishing to exchange %s", settings.amqp_exchange)
        marks = Marks(functools.partial(mark_handed_off, claims, committed))
        handoff.open(PUBLISH_LEASE_SECONDS, functools.partial(publish_handed_off, pool, publisher, marks))
        try:
            await drain_forever(pool, claims, publisher, settings, wake, committed, stop)
        finally:
            try:
                await handoff.close()
            finally:
                await marks.close()
    finally:
        await asyncio.gather(claims.close(), broker.close(connection))


async def main(settings: Settings, stop: asyncio.Event) -> None:
    """The standalone dispatcher process."""
    pool = await db.create_pool(settings)
    try:
        async with (metrics.metrics_server(settings.host, settings.metrics_port),
                    wakeups.sending("stream announcements", pool, events.announce) as committed):
            await run_dispatcher(pool, settings, committed, stop)
    finally:
        await pool.close()
