"""Outbox rows handed from an API process's creates to its own embedded dispatcher, in memory.

While the dispatcher is publishing, a create leases its task's outbox row to it in the create's
own statement (tasks/create_many's lease) and hands the row over here: the dispatcher publishes
it at once, without the claim's round trip (outbox/claim_due), and marks its task PENDING while
the message goes out (tasks/mark_pending). The lease keeps other dispatchers off the row as a
claim's would; if this process dies before the row is marked published, the row comes due again
when the lease runs out and any dispatcher publishes it (the worker skips a duplicate).
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Handoff:
    # Seconds a create leases its row for; None while no dispatcher takes rows (creates then leave
    # them to the claim).
    lease_seconds: float | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # handed over, not yet taken
    due: asyncio.Event = field(default_factory=asyncio.Event)  # rows are waiting: wakes the dispatcher

    def open(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds

    def close(self) -> None:
        self.lease_seconds = None

    def give(self, created: Sequence[Any]) -> None:
        """Take the leased rows among tasks.create_many's results (None: not created)."""
        leased = [{"id": row["outbox_id"], "task_id": row["id"], "priority": row["priority"],
                   "queue": row["queue"]} for row in created if row is not None and row["leased"]]
        if leased:
            self.rows.extend(leased)
            self.due.set()

    def take(self) -> list[dict[str, Any]]:
        rows, self.rows = self.rows, []
        self.due.clear()
        return rows
