"""Tasks in PostgreSQL: one function per SQL file under sql/tasks/, each taking a connection."""

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from taskservice.sql import QUERIES

STATUSES = ("NEW", "PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED")
PRIORITIES = ("LOW", "MEDIUM", "HIGH")
ACTIVE_STATUSES = ("NEW", "PENDING", "IN_PROGRESS")  # counted per queue (tasks/count_active_by_queue)

# The columns clients see; the rest (lease, idempotency) is bookkeeping.
PUBLIC_FIELDS = (
    "id", "name", "description", "priority", "status", "created_at", "started_at",
    "finished_at", "result", "error", "updated_at", "kind", "payload", "attempts",
    "max_attempts", "timeout_seconds", "run_at", "cancel_requested_at", "callback_url", "queue",
    "schedule_id", "scheduled_for", "waiting_on",
)
DEFAULT_QUEUE = "default"


def public(row: asyncpg.Record) -> dict[str, Any]:
    """A task row as the API shows it; `depends_on` from the row when its query reads it (get,
    get_many, list_page, search_page), else none (a task created without parents)."""
    task = {field: row[field] for field in PUBLIC_FIELDS}
    task["progress"] = None if row["progress_updated_at"] is None else {
        "fraction": row["progress_fraction"], "message": row["progress_message"],
        "updated_at": row["progress_updated_at"]}
    try:
        task["depends_on"] = row["depends_on"]
    except KeyError:
        task["depends_on"] = []
    return task


async def create(
    conn: asyncpg.Connection, *, name: str, description: str | None, priority: str,
    kind: str, payload: dict, max_attempts: int, timeout_seconds: int,
    run_at: datetime | None, idempotency_key: str | None = None,
    request_hash: str | None = None, callback_url: str | None = None, queue: str = DEFAULT_QUEUE,
    waiting_on: int = 0,
) -> asyncpg.Record | None:
    """The new task, or None when `idempotency_key` already names a task. With `waiting_on`
    parents it gets no outbox row: dependencies.link, in the same transaction, decides."""
    return await conn.fetchrow(
        QUERIES["tasks/create"], name, description, priority, kind, payload,
        max_attempts, timeout_seconds, run_at, idempotency_key, request_hash, callback_url, queue,
        waiting_on)


async def plan_each_execution(conn: asyncpg.Connection) -> None:
    """Plan each statement of the current transaction when it runs (call first in it)."""
    await conn.execute(QUERIES["tasks/plan_each_execution"])


async def create_many(conn: asyncpg.Connection, items: Sequence[dict[str, Any]],
                      idempotency_keys: Sequence[str | None], request_hashes: Sequence[str | None],
                      lease_seconds: float | None = None) -> list[asyncpg.Record | None]:
    """For each item (the keyword arguments of `create`, without the key and hash) and its
    idempotency key and request hash: the new task, or None when its key already names a task.
    With `lease_seconds`, the outbox rows of tasks due now are leased to the caller (each row
    then has `leased` true and its `outbox_id`: taskservice.handoff)."""
    def column(name: str) -> list:
        return [item[name] for item in items]

    rows = await conn.fetch(
        QUERIES["tasks/create_many"], column("name"), column("description"), column("priority"),
        column("kind"), [orjson.dumps(item["payload"]).decode() for item in items],
        column("max_attempts"), column("timeout_seconds"), column("run_at"),
        list(idempotency_keys), list(request_hashes), [item.get("callback_url") for item in items],
        [item.get("queue", DEFAULT_QUEUE) for item in items], [item.get("waiting_on", 0) for item in items],
        lease_seconds)
    created: list[asyncpg.Record | None] = [None] * len(items)
    for row in rows:
        created[row["position"] - 1] = row
    return created


async def get(conn: asyncpg.Connection, task_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(QUERIES["tasks/get"], task_id)


async def get_by_idempotency_key(conn: asyncpg.Connection, key: str,
                                 ttl_seconds: float) -> asyncpg.Record | None:
    """The task an unexpired idempotency key names, if any."""
    return await conn.fetchrow(QUERIES["tasks/get_by_idempotency_key"], key, ttl_seconds)


async def get_many(conn: asyncpg.Connection, task_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    """The tasks with these ids that exist, in the order given."""
    return await conn.fetch(QUERIES["tasks/get_many"], task_ids)


async def get_by_idempotency_keys(conn: asyncpg.Connection, keys: Sequence[str],
                                  ttl_seconds: float) -> list[asyncpg.Record]:
    """The tasks unexpired idempotency keys name, in no particular order."""
    return await conn.fetch(QUERIES["tasks/get_by_idempotency_keys"], keys, ttl_seconds)


async def release_idempotency_keys(conn: asyncpg.Connection, keys: Sequence[str], ttl_seconds: float) -> None:
    """Free those of `keys` whose task is older than the TTL."""
    await conn.execute(QUERIES["tasks/release_idempotency_keys"], keys, ttl_seconds)


async def release_idempotency_key(conn: asyncpg.Connection, key: str, ttl_seconds: float) -> None:
    """Free `key` if the task holding it is older than the TTL."""
    await conn.execute(QUERIES["tasks/release_idempotency_key"], key, ttl_seconds)


async def list_page(
    conn: asyncpg.Connection, *, statuses: Sequence[str] | None,
    priorities: Sequence[str] | None, limit: int, offset: int,
    queues: Sequence[str] | None = None, schedule_id: UUID | None = None, waiting: bool | None = None,
) -> list[asyncpg.Record]:
    return await conn.fetch(QUERIES["tasks/list_page"], statuses, priorities, limit, offset,
                            queues, schedule_id, waiting)


async def count(conn: asyncpg.Connection, *, statuses: Sequence[str] | None,
                priorities: Sequence[str] | None) -> int:
    """Exact, from the trigger-kept counters."""
    return await conn.fetchval(QUERIES["tasks/count"], statuses, priorities)


async def count_matching(conn: asyncpg.Connection, *, statuses: Sequence[str] | None,
                         priorities: Sequence[str] | None, limit: int,
                         queues: Sequence[str] | None = None, schedule_id: UUID | None = None,
                         waiting: bool | None = None) -> int:
    """Tasks in queues, of a schedule or waiting on parents (and the other filters), which the
    counters do not keep, counted up to `limit`."""
    return await conn.fetchval(QUERIES["tasks/count_matching"], statuses, priorities, limit,
                               queues, schedule_id, waiting)


# How far a search reads the newest tasks before it turns to the trigram index
# (docs/design.md, "Query plans"): a page is taken from the newest SEARCH_NEWEST_ROWS
# when they hold it. SEARCH_KEY_ROWS of them show which word of a search is rarest.
SEARCH_NEWEST_ROWS = 1_000
SEARCH_KEY_ROWS = 200
_WORD = re.compile(r"[^\W_]{3,}")


def search_words(search: str) -> list[str]:
    """The words of a search (runs of three or more letters and digits), each once; or the
    whole text when it has none. Any part of the text finds every task the text matches."""
    return list(dict.fromkeys(_WORD.findall(search))) or [search]


async def search_key(conn: asyncpg.Connection, search: str) -> tuple[str, bool]:
    """The part of `search` the trigram index looks up: of its words, the one fewest of the
    newest tasks contain. One distinctive word reads far less of the index than all the
    trigrams of a text whose other word is in most tasks ("acct" in "acct-04242"). Also
    whether that word is common enough (2% of those tasks) for a page to come from a walk
    of the newest tasks: a rarer one goes straight to the index."""
    row = await conn.fetchrow(QUERIES["tasks/search_key"], search_words(search), SEARCH_KEY_ROWS)
    return row["word"], row["matching"] * 50 >= SEARCH_KEY_ROWS


async def search_page(
    conn: asyncpg.Connection, *, statuses: Sequence[str] | None,
    priorities: Sequence[str] | None, search: str, key: str, limit: int, offset: int,
    newest_rows: int = SEARCH_NEWEST_ROWS, queues: Sequence[str] | None = None, schedule_id: UUID | None = None,
) -> list[asyncpg.Record]:
    """Tasks matching a text search, newest first; `key` is search_key's part of it. Each row's
    `from_newest` says whether the page came from the newest tasks (matches are common);
    `matched`, how many tasks match in all when it came from the index (else None)."""
    return await conn.fetch(QUERIES["tasks/search_page"], statuses, priorities, search,
                            limit, offset, key, newest_rows, queues, schedule_id)


def search_count_since(page: Sequence[asyncpg.Record], limit: int) -> datetime | None:
    """Where a count of `limit` matches should start, judging by a page of them that came from
    the newest tasks (None when it did not: the matches are too rare for a range to help): the
    page's newest match, less twice the time per match the page showed, times `limit`."""
    if not page or not page[0]["from_newest"]:
        return None
    newest, oldest = page[0]["created_at"], page[-1]["created_at"]
    try:
        return newest - (newest - oldest) * (2 * limit / len(page))
    except OverflowError:  # before year 1: the whole table
        return None


async def search_count(conn: asyncpg.Connection, *, statuses: Sequence[str] | None,
                       priorities: Sequence[str] | None, search: str, key: str, limit: int,
                       since: datetime | None, queues: Sequence[str] | None = None,
                       schedule_id: UUID | None = None) -> int:
    """Tasks matching a text search, counted up to `limit`, first over the hours from `since`
    (search_count_since), then over all when those hold fewer; `key` is search_key's part of it."""
    return await conn.fetchval(QUERIES["tasks/search_count"], statuses, priorities, search, limit, since, key,
                               queues, schedule_id)


async def cancel(conn: asyncpg.Connection, task_id: UUID) -> asyncpg.Record | None:
    """The task with `from_status` and `changed`: cancelled (NEW, PENDING), cancel requested
    (IN_PROGRESS), or left alone as it is (`changed` false); None when there is no such task."""
    return await conn.fetchrow(QUERIES["tasks/cancel"], task_id)


async def events(conn: asyncpg.Connection, task_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(QUERIES["tasks/events"], task_id)


async def retry(conn: asyncpg.Connection, task_id: UUID) -> asyncpg.Record | None:
    """The task with `from_status` and `changed`: PENDING again with a fresh attempt budget (it was
    FAILED or CANCELLED; NEW if it still waits on parents, and the descendants its failure
    cancelled wait again), or left alone as it is (`changed` false); None when there is no such task."""
    return await conn.fetchrow(QUERIES["tasks/retry"], task_id)


async def get_status(conn: asyncpg.Connection, task_id: UUID) -> str | None:
    return await conn.fetchval(QUERIES["tasks/get_status"], task_id)


async def count_by_status(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """(status, priority, n) rows from the trigger-kept counters."""
    return await conn.fetch(QUERIES["tasks/count_by_status"])


async def count_active_by_queue(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """(queue, status, n) rows for the tasks NEW, PENDING or IN_PROGRESS."""
    return await conn.fetch(QUERIES["tasks/count_active_by_queue"])


# -- execution: every write below is guarded by the attempt it owns --------------

async def flush_claim(conn: asyncpg.Connection, task_id: UUID, attempt: int, worker_id: str) -> bool:
    """Once every commit so far is flushed to disk (a claim committed without waiting, say):
    whether this worker's claim of `attempt` of the task is there and still running (false: a
    database crash lost it, or the attempt has moved on)."""
    return bool(await conn.fetchval(QUERIES["tasks/flush_claim"], task_id, attempt, worker_id))


async def claim(conn: asyncpg.Connection, messages: Sequence[tuple[UUID, int]], worker_id: str,
                lease_seconds: float, limited_kinds: Sequence[str] = (),
                unflushed: bool = False) -> list[asyncpg.Record | None]:
    """For each (task id, outbox id) message: its task, now IN_PROGRESS under this worker's
    lease, or None if the message claimed nothing (tasks of `limited_kinds` never: their
    claims go through taskservice.limits). `unflushed`: commit without waiting for the WAL
    flush (each row's `flushed` is then false; see flush_claim)."""
    # Sorted by task: two workers' batches that share a task (a duplicate message) lock in one order.
    ordered = sorted(set(messages))
    rows = await conn.fetch(QUERIES["tasks/claim"], [task_id for task_id, _ in ordered],
                            [outbox_id for _, outbox_id in ordered], worker_id, lease_seconds,
                            list(limited_kinds), unflushed)
    claimed = {(row["id"], row["outbox_id"]): row for row in rows}
    # pop: of two identical messages in one batch, only the first gets the task.
    return [claimed.pop(message, None) for message in messages]


async def renew_leases(conn: asyncpg.Connection, task_ids: Sequence[UUID], worker_id: str,
                       lease_seconds: float) -> list[asyncpg.Record]:
    return await conn.fetch(QUERIES["tasks/renew_leases"], task_ids, worker_id, lease_seconds)


async def complete(conn: asyncpg.Connection, attempts: Sequence[tuple[UUID, int, Any]],
                   worker_id: str, announce_as: str | None = None) -> list[asyncpg.Record | None]:
    """For each (task id, attempt, result): the task's (id, attempts, status, announced), now
    COMPLETED, or None when the attempt is no longer ours. `announce_as`: the commit announces the
    completions itself, as events.announce with this sender would (`announced`: if it did)."""
    rows = await conn.fetch(QUERIES["tasks/complete"], [task_id for task_id, _, _ in attempts],
                            [attempt for _, attempt, _ in attempts],
                            [None if result is None else orjson.dumps(result).decode() for _, _, result in attempts],
                            worker_id, announce_as)
    # By task and attempt: a lost attempt and its task's next one may finish in one batch.
    completed = {(row["id"], row["attempts"]): row for row in rows}
    return [completed.get((task_id, attempt)) for task_id, attempt, _ in attempts]


async def fail_attempt(conn: asyncpg.Connection, task_id: UUID, attempt: int, worker_id: str,
                       error: str, retry_in_seconds: float, retryable: bool) -> asyncpg.Record | None:
    """PENDING again (retry after the delay), or FAILED when attempts are exhausted or not retryable."""
    return await conn.fetchrow(QUERIES["tasks/fail_attempt"], task_id, attempt, worker_id, error,
                               retry_in_seconds, retryable)


async def record_progress(conn: asyncpg.Connection, task_id: UUID, attempt: int, worker_id: str,
                          fraction: float, message: str | None) -> bool:
    """Store a running attempt's progress; False when the attempt is no longer ours."""
    row = await conn.fetchrow(QUERIES["tasks/record_progress"], task_id, attempt, worker_id, fraction, message)
    return row is not None


async def mark_cancelled(conn: asyncpg.Connection, task_id: UUID, attempt: int,
                         worker_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(QUERIES["tasks/mark_cancelled"], task_id, attempt, worker_id)


async def hand_back(conn: asyncpg.Connection, task_id: UUID, attempt: int,
                    worker_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(QUERIES["tasks/hand_back"], task_id, attempt, worker_id)


async def reap_expired(conn: asyncpg.Connection, batch_size: int) -> list[asyncpg.Record]:
    return await conn.fetch(QUERIES["tasks/reap_expired"], batch_size)


async def redispatch_lost(conn: asyncpg.Connection, published_seconds_ago: float, batch_size: int,
                          queues: Sequence[str]) -> int:
    """Give up to `batch_size` PENDING tasks of `queues`, last published more than
    `published_seconds_ago`, a fresh outbox row due now; how many. Only for queues that are empty."""
    return await conn.fetchval(QUERIES["tasks/redispatch_lost"], published_seconds_ago, batch_size, list(queues))


# -- maintenance: small batches, SKIP LOCKED --------------------------------------

async def prune_finished(conn: asyncpg.Connection, retention_days: int, batch_size: int) -> int:
    """Delete up to `batch_size` tasks finished more than `retention_days` ago; how many."""
    return await conn.fetchval(QUERIES["tasks/prune_finished"], retention_days, batch_size)


async def expire_idempotency_keys(conn: asyncpg.Connection, ttl_seconds: float, batch_size: int) -> int:
    """Clear up to `batch_size` idempotency keys older than the TTL; how many."""
    return await conn.fetchval(QUERIES["tasks/expire_idempotency_keys"], ttl_seconds, batch_size)
