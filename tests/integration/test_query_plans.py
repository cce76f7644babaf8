"""tasks/claim and tasks/complete reach each task of their batch by primary key, even when the
statistics count almost no waiting or running tasks (docs/design.md, "Query plans"): a guard an
index on status can serve would read every waiting or running task instead."""

import json

import asyncpg
import pytest

from taskservice.sql import QUERIES
from tests.support.services import RUN_ID, SERVER_URL, run_dbmate, with_database

# 20,000 finished tasks, one waiting and one running, analysed: the statistics a table gets when
# it is analysed while idle.
FILL = """
INSERT INTO tasks (name, kind, timeout_seconds, status, attempts, started_at, finished_at,
                   worker_id, lease_expires_at)
SELECT 'task ' || n, 'noop', 60,
       CASE n WHEN 1 THEN 'PENDING' WHEN 2 THEN 'IN_PROGRESS' ELSE 'COMPLETED' END,
       CASE n WHEN 1 THEN 0 ELSE 1 END,
       CASE WHEN n > 1 THEN now() END,
       CASE WHEN n > 2 THEN now() END,
       CASE n WHEN 2 THEN 'worker-1' END,
       CASE n WHEN 2 THEN now() + interval '1 minute' END
FROM generate_series(1, 20000) AS n;
INSERT INTO outbox (task_id, priority, published_at) SELECT id, priority, now() FROM tasks;
ANALYZE tasks;
ANALYZE outbox;
"""


@pytest.fixture
async def filled():
    url = with_database(SERVER_URL, f"taskservice_plans_{RUN_ID}")
    run_dbmate(url, "create")
    run_dbmate(url, "up")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(FILL)
        yield conn
    finally:
        await conn.close()
        admin = await asyncpg.connect(SERVER_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "taskservice_plans_{RUN_ID}" WITH (FORCE)')
        await admin.close()


def scans_of_tasks(plan: dict) -> list[str]:
    """The index (or "Seq Scan") each scan of `tasks` in the plan reads."""
    scan = plan["Node Type"].endswith("Scan") and plan.get("Relation Name") == "tasks"
    found = [plan.get("Index Name", plan["Node Type"])] if scan else []
    return found + [scan for child in plan.get("Plans", []) for scan in scans_of_tasks(child)]


async def plan(conn: asyncpg.Connection, name: str, mode: str, *args) -> list[str]:
    await conn.execute(f"SET plan_cache_mode = {mode}")
    explained = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {QUERIES[name]}", *args)
    return scans_of_tasks(json.loads(explained)[0]["Plan"])


async def test_claim_and_complete_read_tasks_by_primary_key(filled):
    ids = [row["id"] for row in await filled.fetch("SELECT id FROM tasks LIMIT 16")]
    outbox_ids = [row["id"] for row in await filled.fetch("SELECT id FROM outbox LIMIT 16")]
    for mode in ("force_custom_plan", "force_generic_plan"):  # the worker's pool, and a prepared statement's
        claim = await plan(filled, "tasks/claim", mode, ids, outbox_ids, "worker-2", 60)
        complete = await plan(filled, "tasks/complete", mode, ids, [1] * 16, [None] * 16, "worker-1")
        # The claim's second scan reads the claimed task's parents (their results), by key too.
        assert (claim, complete) == (["tasks_pkey", "tasks_pkey"], ["tasks_pkey"]), mode
