"""Idempotency keys of batch creates in PostgreSQL: one function per SQL file under sql/batches/.

A batch create sent with an Idempotency-Key takes the key (a task_batches row) before writing its
tasks, then records their ids, so a retry with the same key replays the same tasks.
"""

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from taskservice.sql import QUERIES


async def claim_idempotency_key(conn: asyncpg.Connection, key: str, request_hash: str) -> asyncpg.Record | None:
    """The new batch holding `key`, or None when the key is taken (after waiting for a racing holder)."""
    return await conn.fetchrow(QUERIES["batches/claim_idempotency_key"], key, request_hash)


async def get_by_idempotency_key(conn: asyncpg.Connection, key: str, ttl_seconds: float) -> asyncpg.Record | None:
    """The batch an unexpired idempotency key names, if any."""
    return await conn.fetchrow(QUERIES["batches/get_by_idempotency_key"], key, ttl_seconds)


async def release_idempotency_key(conn: asyncpg.Connection, key: str, ttl_seconds: float) -> None:
    """Free `key` if the batch holding it is older than the TTL."""
    await conn.execute(QUERIES["batches/release_idempotency_key"], key, ttl_seconds)


async def record_tasks(conn: asyncpg.Connection, batch_id: UUID, task_ids: Sequence[UUID]) -> None:
    await conn.execute(QUERIES["batches/record_tasks"], batch_id, task_ids)


async def expire_idempotency_keys(conn: asyncpg.Connection, ttl_seconds: float, limit: int) -> int:
    """Delete up to `limit` batch keys older than the TTL; how many went."""
    return await conn.fetchval(QUERIES["batches/expire_idempotency_keys"], ttl_seconds, limit)
