"""Single creates from concurrent requests, written together: one statement and one commit for
all the creates that arrive while the previous ones are being written (taskservice.batching).

Each task is as its own request would have written it, with its outbox row in the same
transaction. A batch the database refused is written again item by item, so one request's error
is never another's; a batch whose outcome is unknown (the connection was lost) is never written
again: every request in it fails, as a lone create would. An idle API writes a lone create on the
next turn of the event loop. While the process's embedded dispatcher is idle, the tasks due now are
handed to it (taskservice.handoff).
"""

import asyncio
import functools
from typing import Any

import asyncpg

from taskservice import db, tasks
from taskservice.batching import Batcher
from taskservice.handoff import Handoff

# (tasks.create's arguments without the key and hash, idempotency key, request hash)
Create = tuple[dict[str, Any], str | None, str | None]
# The most creates in one statement: a bound on its size and on the wait of the last one in it.
MAX_BATCH = 64
# Batches written at once: while they wait for their commits, the next ones fill. More would
# split the batches; fewer left the p99 of a create near twice the p50 (bench/README.md).
WRITERS = 4


async def write(pool: asyncpg.Pool, handoff: Handoff, creates: list[Create]) -> list[asyncpg.Record | None]:
    """The new task for each create, or None where its idempotency key already names a task.
    A task handed to the dispatcher is `leased`."""
    async with pool.acquire() as conn:
        created = await tasks.create_many(conn, [arguments for arguments, _, _ in creates],
                                          [key for _, key, _ in creates], [hash_ for _, _, hash_ in creates],
                                          handoff.lease())
    if handoff.give(created):
        # One turn of the event loop for the publish: its frames are queued for the socket before
        # the creates' HTTP answers are (the worker is the longer way to the task's outcome).
        await asyncio.sleep(0)
    return created


def refused(exc: Exception) -> bool:
    """Whether the database answered with an error, so that nothing of the batch was written."""
    return isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, db.UNAVAILABLE_ERRORS)


def batcher(pool: asyncpg.Pool, handoff: Handoff) -> Batcher[Create, asyncpg.Record | None]:
    return Batcher(functools.partial(write, pool, handoff), MAX_BATCH, WRITERS, split=refused)
