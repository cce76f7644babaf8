"""Outbox rows handed from an API process's creates to its own embedded dispatcher, in memory.

While the dispatcher is publishing, a create leases its task's outbox row to it in the create's
own statement (tasks/create_many's lease) and hands the row over here. It is published at once,
without the claim's round trip (outbox/claim_due); once RabbitMQ confirms it, the row is marked
published and its task PENDING (outbox/mark_handed_off). The lease keeps other dispatchers off the
row as a claim's would; if this process dies before the row is marked published, the row comes due
again when the lease runs out and any dispatcher publishes it (the worker skips a duplicate).

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

log = logging.getLogger(__name__)

# Publishes a batch of handed-over rows (taskservice.dispatcher.publish_handed_off).
Publish = Callable[[list[dict[str, Any]]], Awaitable[None]]


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
