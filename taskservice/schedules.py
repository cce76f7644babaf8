"""Schedules: when a schedule's ticks fall (pure functions over a fixed clock), and the schedules
table, one function per SQL file under sql/schedules/, each taking a connection.

A schedule is a cron expression read in its time zone, or an interval (`every` seconds) whose
ticks fall on multiples of it since the Unix epoch, so they do not depend on when the schedule
was written. Daylight-saving changes follow Debian's cron (through cronsim): a time the clocks
skip fires once, at the first minute that exists after it; a time the clocks repeat fires once,
at its first occurrence.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from cronsim import CronSim, CronSimError

from taskservice.sql import QUERIES

OVERLAPS = ("allow", "skip")
MAX_EVERY_SECONDS = 366 * 24 * 3600
UNFINISHED = ("NEW", "PENDING", "IN_PROGRESS")
# The usual macros, as Debian's cron reads them.
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
# Candidates cronsim may yield at or before `after` (a repeated hour's second pass) before
# the next tick; a bound on the loop, far above what any expression needs.
MAX_CANDIDATES = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The columns clients see.
PUBLIC_FIELDS = (
    "id", "name", "cron", "every", "timezone", "task", "enabled", "overlap", "next_run_at",
    "last_run_at", "last_task_id", "last_task_status", "created_at", "updated_at",
)


class InvalidSchedule(ValueError):
    """A cron expression or time zone that cannot make ticks; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Spec:
    """When a schedule fires: exactly one of `cron` and `every` (seconds)."""
    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, or not a zone's name at all
        raise InvalidSchedule("timezone", f"Unknown time zone {name!r}; use an IANA name such as "
                                          "'Europe/Berlin' or 'UTC'.") from None


def expand(cron: str) -> str:
    """The five fields of `cron`, a macro replaced by its expression."""
    expression = MACROS.get(cron.strip().lower(), cron)
    if len(expression.split()) != len(CRON_FIELDS):
        raise InvalidSchedule("cron", f"Must have five fields ({', '.join(CRON_FIELDS)}) or be one of "
                                      f"{', '.join(MACROS)}.")
    return expression


def next_fire(spec: Spec, after: datetime) -> datetime:
    """The first tick of `spec` strictly after `after` (aware), in UTC. InvalidSchedule when the
    spec cannot make one."""
    if spec.every is not None:
        period = timedelta(seconds=spec.every)
        return EPOCH + ((after - EPOCH) // period + 1) * period
    tz = zone(spec.timezone)
    try:
        candidates = CronSim(expand(spec.cron), after.astimezone(tz))
        for _, candidate in zip(range(MAX_CANDIDATES), candidates, strict=False):
            # cronsim may answer a repeated hour's first pass for a start in its second one.
            if candidate.astimezone(UTC) > after:
                return candidate.astimezone(UTC)
    except CronSimError as exc:
        raise InvalidSchedule("cron", f"Invalid cron expression: {exc}.") from None
    except (OverflowError, ValueError):  # past year 9999
        pass
    raise InvalidSchedule("cron", "The cron expression never fires.")


def spec_of(row: Any) -> Spec:
    return Spec(cron=row["cron"], every=row["every_seconds"], timezone=row["timezone"])


def public(row: asyncpg.Record) -> dict[str, Any]:
    """A schedule row as the API shows it."""
    return {field: row["every_seconds" if field == "every" else field] for field in PUBLIC_FIELDS}


@dataclass(frozen=True)
class Firing:
    """What one claimed schedule does this round: create its task for tick `fire_at` (None:
    skipped, its previous task is unfinished), and move on to `next_run_at`."""
    schedule_id: UUID
    fire_at: datetime | None
    next_run_at: datetime


def firing(row: Any, now: datetime) -> Firing:
    """The firing of a due schedule `row` (from claim_due) at `now`. Ticks missed while no
    dispatcher ran fire once, as the oldest of them: the next run is the first tick after now."""
    busy = row["overlap"] == "skip" and row["last_task_status"] in UNFINISHED
    return Firing(row["id"], None if busy else row["next_run_at"],
                  next_fire(spec_of(row), max(now, row["next_run_at"])))


# -- the table --------------------------------------------------------------------

async def create(conn: asyncpg.Connection, *, name: str, spec: Spec, task: dict, enabled: bool,
                 overlap: str, next_run_at: datetime | None) -> asyncpg.Record:
    return await conn.fetchrow(QUERIES["schedules/create"], name, spec.cron, spec.every, spec.timezone,
                               task, enabled, overlap, next_run_at)


async def get(conn: asyncpg.Connection, schedule_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(QUERIES["schedules/get"], schedule_id)


async def lock(conn: asyncpg.Connection, schedule_id: UUID) -> asyncpg.Record | None:
    """The schedule, locked until the transaction ends (a firing waits for it)."""
    return await conn.fetchrow(QUERIES["schedules/lock"], schedule_id)


async def update(conn: asyncpg.Connection, schedule_id: UUID, *, name: str, spec: Spec, task: dict,
                 enabled: bool, overlap: str, next_run_at: datetime | None) -> asyncpg.Record | None:
    return await conn.fetchrow(QUERIES["schedules/update"], schedule_id, name, spec.cron, spec.every,
                               spec.timezone, task, enabled, overlap, next_run_at)


async def delete(conn: asyncpg.Connection, schedule_id: UUID) -> asyncpg.Record | None:
    """The schedule as it was; None when there was none. Its tasks stay, without their schedule_id."""
    return await conn.fetchrow(QUERIES["schedules/delete"], schedule_id)


async def list_page(conn: asyncpg.Connection, *, limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(QUERIES["schedules/list_page"], limit, offset)


async def count(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(QUERIES["schedules/count"])


async def claim_due(conn: asyncpg.Connection, batch_size: int) -> list[asyncpg.Record]:
    """Up to `batch_size` due schedules, locked until the transaction ends; each row carries
    the status of its last task and the transaction's `now`."""
    return await conn.fetch(QUERIES["schedules/claim_due"], batch_size)


async def fire(conn: asyncpg.Connection, firings: Sequence[Firing]) -> list[asyncpg.Record]:
    """Create the firings' tasks (with their outbox rows) and advance their schedules; the new tasks."""
    return await conn.fetch(QUERIES["schedules/fire"], [f.schedule_id for f in firings],
                            [f.fire_at for f in firings], [f.next_run_at for f in firings])


async def run_now(conn: asyncpg.Connection, schedule_id: UUID) -> asyncpg.Record | None:
    """A task from the schedule's template, now, outside its ticks; None when there is no such schedule."""
    return await conn.fetchrow(QUERIES["schedules/run_now"], schedule_id)


async def seconds_until_due(conn: asyncpg.Connection) -> float | None:
    """How long until the next enabled schedule is due (≤ 0: it is); None when none is enabled."""
    return await conn.fetchval(QUERIES["schedules/seconds_until_due"])
