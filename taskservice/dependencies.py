"""Tasks that wait for other tasks: one function per SQL file under sql/dependencies/.

The counting down and the cancelling happen in the database (trigger settle_dependents,
db/migrations/20261130130000_dependencies.sql), in the transaction of the parent's change."""

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from taskservice.sql import QUERIES


async def link(conn: asyncpg.Connection, task_ids: Sequence[UUID], parent_ids: Sequence[UUID]) -> list[UUID]:
    """Make each new task (created with `waiting_on` = its number of parents) wait for its parent,
    pairwise; the parent ids that name no task. Run in the creating transaction."""
    return [row["parent_id"] for row in await conn.fetch(QUERIES["dependencies/link"], task_ids, parent_ids)]


async def parents(conn: asyncpg.Connection, task_id: UUID) -> list[UUID]:
    return await conn.fetchval(QUERIES["dependencies/parents"], task_id)


async def children(conn: asyncpg.Connection, task_id: UUID, limit: int) -> list[UUID]:
    return await conn.fetchval(QUERIES["dependencies/children"], task_id, limit)
