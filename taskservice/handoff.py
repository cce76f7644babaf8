"""Outbox rows handed from an API process's creates to its own embedded dispatcher, in memory.

While the dispatcher is publishing, a create leases its task's outbox row to it in the create's
own statement (tasks/create_many's lease) and hands the row over here. It is published at once,
without the claim's round trip (outbox/claim_due); MARK_DELAY_SECONDS after RabbitMQ confirms
it, the row is marked published and its task PENDING (outbox/mark_handed_off, `Marks`). The
lease keeps other dispatchers off the row as a claim's would; if this process dies before the
row is marked published, the row comes due again when the lease runs out and any dispatcher
publishes it (the worker skips a duplicate).

It is for a process that is not busy dispatching: a create leases its row only while no handed-over
publish is under way (`lease`). The publish then takes the next turn of the event loop, ahead of
the create's HTTP answer. Under load the creates leave their rows to the dispatcher's claim, whose
paced batches cost fewer statements per task than a publish per create.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskservice.lifecycle import wait_for

log = logging.getLogger(__name__)

# Publishes a batch of handed-over rows (taskservice.dispatcher.publish_handed_off).
Publish = Callable[[list[dict[str, Any]]], Awaitable[None]]
# Marks a batch of confirmed handed-over rows published (taskservice.dispatcher.mark_handed_off).
Mark = Callable[[list[dict[str, Any]]], Awaitable[None]]

# How long after its confirm a handed-over row waits for its mark. The mark is bookkeeping; made
# at once, it took CPU (the API's, the database's) from the claim and the completion of the very
# same task, which follow the confirm within milliseconds: idle p50 0.35 ms slower, measured.
MARK_DELAY_SECONDS = 0.01


@dataclass(eq=False)
class Handoff:
    # Seconds a create leases its row for while a dispatcher takes rows; None while none does.
    lease_seconds: float | None = None
    publish: Publish | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # handed over, not yet being published
    publishing: asyncio.Task | None = None

    def lease(self) -> float | None:
        """Seconds a create now leases its row for; None: leave it to the claim."""
        if self.publish is None or (self.publishing is not None and not self.publishing.done()):
            return None
        return self.lease_seconds

    def open(self, lease_seconds: float, publish: Publish) -> None:
        self.lease_seconds, self.publish = lease_seconds, publish

    async def close(self) -> None:
        """Lease no more rows; publish what was handed over. (A create already under way may still
        hand over a row after this: it waits for its lease to run out.)"""
        self.lease_seconds = None
        while self.publishing is not None and not self.publishing.done():
            await self.publishing
        self.publish = None

    def give(self, created: Sequence[Any]) -> bool:
        """Take the leased rows among tasks.create_many's results (None: not created); True when
        this started a publish (its first step runs on the next turn of the event loop)."""
        leased = [{"id": row["outbox_id"], "task_id": row["id"], "priority": row["priority"],
                   "queue": row["queue"]} for row in created if row is not None and row["leased"]]
        if not leased or self.publish is None:
            return False
        self.rows.extend(leased)
        if self.publishing is not None and not self.publishing.done():
            return False
        self.publishing = asyncio.get_running_loop().create_task(self.publish_all(self.publish))
        return True

    async def publish_all(self, publish: Publish) -> None:
        while self.rows:
            rows, self.rows = self.rows, []
            try:
                await publish(rows)
            except Exception:  # the rows come due again when their lease runs out
                log.exception("publishing %d handed-over outbox rows failed unexpectedly", len(rows))


@dataclass(eq=False)
class Marks:
    """Confirmed handed-over rows waiting MARK_DELAY_SECONDS for their mark, then marked together.
    Rows not marked (the process died first, or the database was unavailable) stay leased: they
    are published again when the lease runs out, and the worker skips the duplicates."""
    mark: Mark
    rows: list[dict[str, Any]] = field(default_factory=list)
    marking: asyncio.Task | None = None
    now: asyncio.Event = field(default_factory=asyncio.Event)  # set: no more waiting (closing)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)
        if self.marking is None or self.marking.done():
            self.marking = asyncio.get_running_loop().create_task(self.mark_after(MARK_DELAY_SECONDS))

    async def mark_after(self, delay: float) -> None:
        await wait_for(self.now, delay)
        while self.rows:
            rows, self.rows = self.rows, []
            try:
                await self.mark(rows)
            except Exception:
                log.exception("marking %d handed-over outbox rows failed unexpectedly", len(rows))

    async def close(self) -> None:
        """Mark what is waiting now (a stopping dispatcher)."""
        self.now.set()
        if self.marking is not None:
            await self.marking
