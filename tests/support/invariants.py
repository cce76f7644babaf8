"""What must hold once a fault test's load has drained, whatever was killed or cut on the way.

`violations(conn, task_ids, runs)` checks the tasks a test created and returns, per invariant, what
breaks it (an empty dict when all hold), so a failure names every offending task at once:

- lost: a created task is missing;
- not final: a task is still NEW, PENDING or IN_PROGRESS (stuck);
- over budget: more attempts than max_attempts;
- miscounted: task_counts disagrees with count(*) over tasks (for the whole table);
- outbox due: an unpublished outbox row that is already due;
- illegal history: a task_events sequence that does not follow the lifecycle, or does not end in
  the task's status;
- handler runs (when `runs` is given, task id -> times its handler started): more runs than
  attempts, a COMPLETED task whose handler never ran, or a task that ran more or fewer times than
  its attempts although no attempt of it was rescued from a dead worker (a duplicate run is allowed
  only after a kill).

The handler-run check assumes nobody retried or handed back a task (both reset or lower
`attempts`); a test doing that checks runs its own way.
"""

from collections.abc import Iterable, Mapping
from uuid import UUID

import asyncpg

FINAL = ("COMPLETED", "FAILED", "CANCELLED")

# Every status change the service makes on its own (docs/design.md, "Lifecycle"): from -> allowed
# next; None is the insert. IN_PROGRESS -> PENDING is a retry, a rescue by the reaper or a hand-back.
# The retry endpoint's FAILED/CANCELLED -> PENDING is left out: a fault test that uses it passes
# `transitions` with those steps added.
TRANSITIONS: Mapping[str | None, frozenset[str]] = {
    None: frozenset({"NEW"}),
    "NEW": frozenset({"PENDING", "CANCELLED"}),
    "PENDING": frozenset({"IN_PROGRESS", "CANCELLED"}),
    "IN_PROGRESS": frozenset({"COMPLETED", "FAILED", "PENDING", "CANCELLED"}),
    "COMPLETED": frozenset(),
    "FAILED": frozenset(),
    "CANCELLED": frozenset(),
}

# Counters against the table, status x priority: the rows where they differ.
RECOUNT = """
SELECT coalesce(c.status, t.status) AS status, coalesce(c.priority, t.priority) AS priority,
       coalesce(c.n, 0) AS counted, coalesce(t.n, 0) AS actual
FROM (SELECT status, priority, sum(n) AS n FROM task_counts GROUP BY status, priority) AS c
FULL JOIN (SELECT status, priority, count(*) AS n FROM tasks GROUP BY status, priority) AS t
    USING (status, priority)
WHERE coalesce(c.n, 0) <> coalesce(t.n, 0)
"""

# The reaper's error on the event of an attempt whose worker stopped responding (sql/tasks/reap_expired.sql).
RESCUED_ERROR = "lease expired: %"


def history_problem(events: list[asyncpg.Record], status: str,
                    transitions: Mapping[str | None, frozenset[str]] = TRANSITIONS) -> str | None:
    """Why this task's events (in order) are not a legal history ending in `status`; None if they are."""
    before = None
    for event in events:
        if event["from_status"] != before:
            return f"{event['from_status']} -> {event['status']} follows {before}"
        if event["status"] not in transitions[before]:
            return f"{before} -> {event['status']} is not a lifecycle step"
        before = event["status"]
    if before != status:
        return f"history ends in {before}, the task is {status}"
    return None


async def violations(conn: asyncpg.Connection, task_ids: Iterable[UUID],
                     runs: Mapping[UUID, int] | None = None,
                     transitions: Mapping[str | None, frozenset[str]] = TRANSITIONS) -> dict[str, list]:
    ids = list(task_ids)
    rows = {row["id"]: row for row in await conn.fetch(
        "SELECT id, status, attempts, max_attempts FROM tasks WHERE id = ANY($1)", ids)}
    events: dict[UUID, list] = {task_id: [] for task_id in rows}
    for event in await conn.fetch("SELECT task_id, from_status, status, error FROM task_events "
                                  "WHERE task_id = ANY($1) ORDER BY id", ids):
        events[event["task_id"]].append(event)
    rescued = {row["task_id"] for row in await conn.fetch(
        "SELECT DISTINCT task_id FROM task_events WHERE task_id = ANY($1) AND error LIKE $2",
        ids, RESCUED_ERROR)}
    found = {
        "lost": [task_id for task_id in ids if task_id not in rows],
        "not final": [(task_id, row["status"]) for task_id, row in rows.items() if row["status"] not in FINAL],
        "over budget": [(task_id, row["attempts"], row["max_attempts"]) for task_id, row in rows.items()
                        if row["attempts"] > row["max_attempts"]],
        "miscounted": [dict(row) for row in await conn.fetch(RECOUNT)],
        "outbox due": [dict(row) for row in await conn.fetch(
            "SELECT id, task_id, available_at FROM outbox "
            "WHERE task_id = ANY($1) AND published_at IS NULL AND available_at <= now()", ids)],
        "illegal history": [(task_id, problem) for task_id, row in rows.items()
                            if (problem := history_problem(events[task_id], row["status"], transitions))],
    }
    if runs is not None:
        found["handler runs"] = [
            (task_id, row["status"], f"{runs.get(task_id, 0)} runs, {row['attempts']} attempts")
            for task_id, row in rows.items()
            if runs.get(task_id, 0) > row["attempts"]
            or (row["status"] == "COMPLETED" and runs.get(task_id, 0) == 0)
            or (task_id not in rescued and runs.get(task_id, 0) != row["attempts"])]
    return {name: problems for name, problems in found.items() if problems}
