"""Concurrency and rate limits per kind, shared by every worker and taken at claim time.

A limit lives in a `kind_limits` row: each worker writes the limits it declares when it
starts (`declare`). The worker's ordinary claim (tasks/claim) leaves tasks of limited
kinds alone, so kinds without a limit pay no lock and no extra statement. The messages it
did not claim go through `lock` then `claim` in one transaction: the lock on the kind's
row makes claims of that kind take turns, and the claim, a statement later, sees every
start committed before it. What the limit refuses stays PENDING and comes due again
through a delayed outbox row; `backlog` shows those waits per kind.

The rate is a token bucket holding one second's worth of starts (at least one): in any
T seconds a kind starts at most rate·T plus that capacity.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from taskservice.kinds import Kind, Rate
from taskservice.settings import Settings
from taskservice.sql import QUERIES


@dataclass(frozen=True)
class Limit:
    concurrency: int | None = None
    rate: Rate | None = None


def declared(registry: Mapping[str, Kind], settings: Settings) -> Mapping[str, Limit]:
    """Each limited kind's limit: the handler's declaration, overridden by KIND_CONCURRENCY and
    KIND_RATE (which may also name kinds this worker has no handler for)."""
    limits = {name: Limit(kind.concurrency, kind.rate) for name, kind in registry.items()
              if kind.concurrency is not None or kind.rate is not None}
    for name, concurrency in settings.kind_concurrency:
        limits[name] = Limit(concurrency, limits.get(name, Limit()).rate)
    for name, rate in settings.kind_rate:
        limits[name] = Limit(limits.get(name, Limit()).concurrency, rate)
    return limits


def describe(limits: Mapping[str, Limit]) -> str:
    """`send_email (concurrency 2, rate 100/m), ...` for the start-up log."""
    def one(limit: Limit) -> str:
        parts = ([f"concurrency {limit.concurrency}"] if limit.concurrency else []) + \
                ([f"rate {limit.rate}"] if limit.rate else [])
        return ", ".join(parts)
    return ", ".join(f"{name} ({one(limit)})" for name, limit in sorted(limits.items())) or "none"


async def declare(conn: asyncpg.Connection, limits: Mapping[str, Limit],
                  unlimited: Sequence[str]) -> list[asyncpg.Record]:
    """Write these limits (a bucket keeps its tokens) and drop any for the `unlimited` kinds."""
    names = sorted(limits)
    return await conn.fetch(
        QUERIES["limits/declare"], names, [limits[n].concurrency for n in names],
        [limits[n].rate.limit if limits[n].rate else None for n in names],
        [limits[n].rate.period_seconds if limits[n].rate else None for n in names],
        [name for name in unlimited if name not in limits])


async def lock(conn: asyncpg.Connection, task_ids: Sequence[UUID]) -> list[str]:
    """Lock the limit rows of these tasks' kinds until the transaction ends; the kinds locked."""
    return [row["kind"] for row in await conn.fetch(QUERIES["limits/lock"], task_ids)]


async def claim(conn: asyncpg.Connection, messages: Sequence[tuple[UUID, int]], worker_id: str,
                lease_seconds: float, retry_seconds: float) -> list[asyncpg.Record | None]:
    """As tasks.claim, within the kinds' limits (their rows locked by `lock` first, in the same
    transaction). A message its limit refuses claims nothing: its task waits for a new one."""
    ordered = sorted(set(messages))
    rows = await conn.fetch(QUERIES["limits/claim"], [task_id for task_id, _ in ordered],
                            [outbox_id for _, outbox_id in ordered], worker_id, lease_seconds, retry_seconds)
    claimed = {(row["id"], row["outbox_id"]): row for row in rows}
    return [claimed.pop(message, None) for message in messages]


def stats(row: asyncpg.Record) -> dict:
    """A `backlog` row as GET /api/v1/stats shows it."""
    rate = None if row["rate_limit"] is None else str(Rate(row["rate_limit"], row["rate_period_seconds"]))
    return {"kind": row["kind"], "concurrency": row["concurrency"], "rate": rate, "running": row["running"],
            "waiting": row["waiting"], "oldest_wait_seconds": round(row["oldest_wait_seconds"], 3)}


async def backlog(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Per limited kind: its limits, running attempts, and tasks waiting for the limit."""
    return await conn.fetch(QUERIES["limits/backlog"])
