"""Upkeep beside the dispatcher: retention of finished tasks and published outbox rows,
expiry of idempotency keys (of tasks and of batch creates). Each runs in batches of BATCH_SIZE
rows, one short transaction each, so no lock is held for long and any number of dispatchers can share it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from taskservice import batches, db, outbox, tasks
from taskservice.lifecycle import wait_for
from taskservice.settings import Settings

log = logging.getLogger(__name__)

BATCH_SIZE = 1000


async def in_batches(pool: asyncpg.Pool, prune: Callable[[asyncpg.Connection], Awaitable[int]],
                     stop: asyncio.Event | None) -> int:
    """Run `prune` (one batch) until a batch comes back short or `stop` is set; rows affected."""
    total = 0
    while stop is None or not stop.is_set():
        async with pool.acquire() as conn:
            done = await prune(conn)
        total += done
        if done < BATCH_SIZE:
            break
    return total


async def maintain_once(pool: asyncpg.Pool, settings: Settings,
                        stop: asyncio.Event | None = None) -> dict[str, int]:
    """One round of upkeep; how many rows each part deleted or cleared."""
    done = {"tasks": 0, "outbox_rows": 0, "idempotency_keys": 0}
    if settings.retention_days > 0:
        done["tasks"] = await in_batches(
            pool, lambda conn: tasks.prune_finished(conn, settings.retention_days, BATCH_SIZE), stop)
    done["outbox_rows"] = await in_batches(
        pool, lambda conn: outbox.prune_published(conn, settings.outbox_retention_seconds, BATCH_SIZE),
        stop)
    done["idempotency_keys"] = await in_batches(
        pool, lambda conn: tasks.expire_idempotency_keys(conn, settings.idempotency_ttl_seconds,
                                                         BATCH_SIZE), stop)
    done["idempotency_keys"] += await in_batches(
        pool, lambda conn: batches.expire_idempotency_keys(conn, settings.idempotency_ttl_seconds,
                                                           BATCH_SIZE), stop)
    return done


async def maintain_forever(pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event) -> None:
    """Upkeep every MAINTENANCE_INTERVAL_SECONDS until `stop`, the first round at once."""
    while not stop.is_set():
        try:
            done = await maintain_once(pool, settings, stop)
        except db.UNAVAILABLE_ERRORS as exc:
            log.warning("maintenance: database unavailable (%s)", type(exc).__name__)
        except asyncpg.PostgresError as exc:  # e.g. a deadlock: the next round tries again
            log.warning("maintenance failed (%s: %s)", type(exc).__name__, exc)
        else:
            if any(done.values()):
                log.info("maintenance: deleted %d finished tasks and %d published outbox rows, "
                         "cleared %d expired idempotency keys",
                         done["tasks"], done["outbox_rows"], done["idempotency_keys"])
        await wait_for(stop, settings.maintenance_interval_seconds)
