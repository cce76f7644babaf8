"""tasks/claim and tasks/complete reach each task of their batch by primary key, even when the
statistics count almost no waiting or running tasks (docs/design.md, "Query plans"): a guard an
index on status can serve would read every waiting or running task instead."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from taskservice import db, dispatcher, outbox, worker
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


@contextlib.asynccontextmanager
async def plans_database(name: str, fill: str = "") -> AsyncIterator[asyncpg.Connection]:
    url = with_database(SERVER_URL, f"taskservice_plans_{name}_{RUN_ID}")
    run_dbmate(url, "create")
    run_dbmate(url, "up")
    conn = await asyncpg.connect(url)
    try:
        if fill:
            await conn.execute(fill)
        yield conn
    finally:
        await conn.close()
        admin = await asyncpg.connect(SERVER_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "taskservice_plans_{name}_{RUN_ID}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def filled():
    async with plans_database("filled", FILL) as conn:
        yield conn


@pytest.fixture
async def empty():
    """A new service's database: every table empty, as when a worker first plans its statements."""
    async with plans_database("empty") as conn:
        yield conn


def scans_of_tasks(plan: dict, relation: str = "tasks") -> list[str]:
    """The index (or "Seq Scan") each scan of `relation` in the plan reads; a bitmap scan's indexes."""
    scan = plan["Node Type"].endswith("Scan") and plan.get("Relation Name") == relation
    found = [plan.get("Index Name", plan["Node Type"])] if scan else []
    if scan and plan["Node Type"] == "Bitmap Heap Scan":
        found = bitmap_indexes(plan) or found
    return found + [scan for child in plan.get("Plans", []) for scan in scans_of_tasks(child, relation)]


def bitmap_indexes(plan: dict) -> list[str]:
    """The indexes a bitmap heap scan's bitmap is built from."""
    own = [plan["Index Name"]] if plan["Node Type"] == "Bitmap Index Scan" else []
    return own + [name for child in plan.get("Plans", []) for name in bitmap_indexes(child)]


async def plan(conn: asyncpg.Connection, name: str, mode: str, *args, relation: str = "tasks") -> list[str]:
    """What each scan of `relation` reads in the plan for these parameter values (generic_plan
    shows a generic one)."""
    await conn.execute(f"SET plan_cache_mode = {mode}")
    explained = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {QUERIES[name]}", *args)
    return scans_of_tasks(json.loads(explained)[0]["Plan"], relation)


async def generic_plan(conn: asyncpg.Connection, name: str, *args, session: dict | None = None) -> dict:
    """The generic plan the statement ran with (as a pool that caches plans may run it), from
    auto_explain, with `session`'s settings too; its writes rolled back. (EXPLAIN of a statement
    with parameters plans for their values, whatever plan_cache_mode says.)"""
    plans: list[str] = []

    def keep(_conn, message) -> None:
        plans.append(message.message)

    conn.add_log_listener(keep)
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute("LOAD 'auto_explain'; SET LOCAL auto_explain.log_min_duration = 0; "
                           "SET LOCAL auto_explain.log_format = json; SET LOCAL auto_explain.log_level = notice; "
                           "SET LOCAL plan_cache_mode = force_generic_plan")
        for setting, value in (session or {}).items():
            await conn.execute("SELECT set_config($1, $2, true)", setting, value)
        await conn.fetch(QUERIES[name], *args)
        generic = await conn.fetchval("SELECT generic_plans FROM pg_prepared_statements WHERE statement = $1",
                                      QUERIES[name])
    finally:
        await transaction.rollback()
        conn.remove_log_listener(keep)
    assert generic, f"{name} did not run a generic plan"
    ran = [plan for plan in (json.loads(message.split("plan:", 1)[1]) for message in plans if "plan:" in message)
           if plan["Query Text"] == QUERIES[name]]
    assert len(ran) == 1, plans
    return ran[0]["Plan"]


async def test_claim_and_complete_read_tasks_by_primary_key(filled):
    """As the worker's pool runs them (worker.SESSION: generic plans), for a batch and for one task."""
    ids = [row["id"] for row in await filled.fetch("SELECT id FROM tasks LIMIT 16")]
    outbox_ids = [row["id"] for row in await filled.fetch("SELECT id FROM outbox LIMIT 16")]
    for n in (16, 1):
        claim = await generic_plan(filled, "tasks/claim", ids[:n], outbox_ids[:n], "worker-2", 60, ["limited"], False,
                                   session=worker.SESSION)
        complete = await generic_plan(filled, "tasks/complete", ids[:n], [1] * n, [None] * n, "worker-1", "",
                                      session=worker.SESSION)
        # The claim's second scan reads the claimed task's parents (their results), by key too.
        assert (scans_of_tasks(claim), scans_of_tasks(complete)) == (["tasks_pkey", "tasks_pkey"], ["tasks_pkey"])


async def test_the_workers_plans_made_on_empty_tables_read_tasks_by_primary_key(empty):
    """A worker plans each statement once per connection, often while the tables are still empty
    (a new service, a bench): those plans must not read the whole table, which will grow. Without
    worker.SESSION's index scans only, the completion's plan made here is a sequential scan."""
    task_id = await empty.fetchval("INSERT INTO tasks (name, kind, timeout_seconds) VALUES ('t', 'noop', 60) "
                                   "RETURNING id")
    outbox_id = await empty.fetchval("SELECT id FROM outbox WHERE task_id = $1", task_id)
    claim = await generic_plan(empty, "tasks/claim", [task_id], [outbox_id], "worker-2", 60, [], False,
                               session=worker.SESSION)
    complete = await generic_plan(empty, "tasks/complete", [task_id], [1], [None], "worker-1", "",
                                  session=worker.SESSION)
    assert (scans_of_tasks(claim), scans_of_tasks(complete)) == (["tasks_pkey", "tasks_pkey"], ["tasks_pkey"])


async def test_a_limited_claim_reads_its_tasks_by_primary_key_and_counts_running_ones_by_kind(filled):
    """limits/claim reaches its batch's tasks as tasks/claim does, and counts a kind's running
    attempts from the small partial index of running tasks, never from all of the kind's tasks."""
    await filled.execute("INSERT INTO kind_limits (kind, concurrency, rate_limit, rate_period_seconds) "
                         "VALUES ('noop', 2, 5, 1)")
    ids = [row["id"] for row in await filled.fetch("SELECT id FROM tasks LIMIT 16")]
    outbox_ids = [row["id"] for row in await filled.fetch("SELECT id FROM outbox LIMIT 16")]
    scans = await plan(filled, "limits/claim", "force_custom_plan", ids, outbox_ids, "worker-2", 60, 0.5)
    assert set(scans) == {"tasks_pkey", "tasks_running_kind_idx"}, scans


async def test_a_schedules_tasks_are_listed_and_counted_from_its_index(filled):
    """The list filtered by schedule_id (the API's pool plans each call: force_custom_plan) reads the
    schedule's own index, not the newest tasks of every schedule and none, whether the schedule made
    a few tasks or a tenth of the table; its count reads one of the schedule's two indexes; with a
    status too, either the schedule's or the status' index serves."""
    few, many = await filled.fetch(
        "INSERT INTO schedules (name, every_seconds, task, next_run_at) "
        "VALUES ('few', 60, '{}', now()), ('many', 60, '{}', now()) RETURNING id")
    tick = "now() + split_part(name, ' ', 2)::int * interval '1 second'"  # one tick per task
    await filled.execute(f"UPDATE tasks SET schedule_id = $1, scheduled_for = {tick} "
                         "WHERE name IN ('task 3', 'task 4', 'task 5')", few["id"])
    await filled.execute(f"UPDATE tasks SET schedule_id = $1, scheduled_for = {tick} "
                         "WHERE split_part(name, ' ', 2)::int % 10 = 0", many["id"])
    await filled.execute("VACUUM ANALYZE tasks")  # as autovacuum leaves a table between bursts
    for schedule in (few, many):
        page = await plan(filled, "tasks/list_page", "force_custom_plan", None, None, 20, 0, None,
                          schedule["id"], None)
        counted = await plan(filled, "tasks/count_matching", "force_custom_plan", None, None, 1001,
                             None, schedule["id"], None)
        assert page[0] == "tasks_schedule_created_idx" and set(page[1:]) <= {"tasks_pkey"}, page
        assert counted in (["tasks_schedule_created_idx"], ["tasks_schedule_tick_idx"]), counted
        with_status = await plan(filled, "tasks/list_page", "force_custom_plan", ["COMPLETED"], None, 20, 0,
                                 None, schedule["id"], None)
        assert with_status[0] in ("tasks_schedule_created_idx", "tasks_status_created_idx"), with_status
    # Without the filter the list keeps its plan.
    unfiltered = await plan(filled, "tasks/list_page", "force_custom_plan", None, None, 20, 0, None, None, None)
    assert unfiltered[0] == "tasks_created_idx", unfiltered


def event_scans(plan: dict) -> list[tuple[str, bool]]:
    """Each scan of `task_events` in the plan: its index (or node type), and whether the id bounds
    are its index condition (a range or lookup; a bitmap heap scan's recheck stands for its index
    scan's) rather than a filter over every entry."""
    scan = plan["Node Type"].endswith("Scan") and plan.get("Relation Name") == "task_events"
    bounded = "Index Cond" in plan or "Recheck Cond" in plan
    found = [(plan.get("Index Name", plan["Node Type"]), bounded)] if scan else []
    return found + [scan for child in plan.get("Plans", []) for scan in event_scans(child)]


async def test_the_event_feed_reads_new_events_and_gaps_by_primary_key_ranges(filled):
    """events/read_new, the API's feed read after every announcement (on the plan-caching pool),
    reaches the rows after its cursor and its gap ids through the primary key, whatever the plan:
    one ordered scan filtered by `id > cursor OR id = ANY(gaps)` read every event in the table
    each time."""
    latest = await filled.fetchval("SELECT max(id) FROM task_events")
    args = (latest - 5, [latest - 100, latest - 50], 500, True)
    await filled.execute("SET plan_cache_mode = force_custom_plan")
    explained = await filled.fetchval(f"EXPLAIN (FORMAT JSON) {QUERIES['events/read_new']}", *args)
    for found in (json.loads(explained)[0]["Plan"], await generic_plan(filled, "events/read_new", *args)):
        scans = event_scans(found)
        assert scans and all(bounded for _, bounded in scans), scans
        assert scans_of_tasks(found) == ["tasks_pkey"], found
    # Without the tasks (no stream open), a read does not touch them.
    analyzed = await filled.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {QUERIES['events/read_new']}",
                                     *args[:3], False)
    assert all(scan.get("Actual Loops", 0) == 0 for scan in task_scans(json.loads(analyzed)[0]["Plan"]))


def task_scans(plan: dict) -> list[dict]:
    """Every scan node of `tasks` in the plan."""
    own = [plan] if plan["Node Type"].endswith("Scan") and plan.get("Relation Name") == "tasks" else []
    return own + [scan for child in plan.get("Plans", []) for scan in task_scans(child)]


def scans(plan: dict) -> list[tuple[str, str]]:
    """(table, index or node type) of each scan of a table in the plan."""
    found = [(plan["Relation Name"], plan.get("Index Name", plan["Node Type"]))] \
        if plan["Node Type"].endswith("Scan") and "Relation Name" in plan else []
    return found + [scan for child in plan.get("Plans", []) for scan in scans(child)]


async def test_the_dispatchers_claim_reads_the_due_index_in_order_and_tasks_by_primary_key(filled):
    """outbox/claim_due, run as the dispatcher runs it (a generic plan, outbox.CLAIM_SESSION), reads
    its batch from the due index and each task by key, though the statistics
    count no due row and a backlog of 5,000 NEW tasks has come since: a status guard an index can
    serve (`status = 'NEW'`) read every NEW task through tasks_status_created_idx here."""
    await filled.execute("""
        WITH new AS (INSERT INTO tasks (name, kind, timeout_seconds)
                     SELECT 'new ' || n, 'noop', 60 FROM generate_series(1, 5000) AS n RETURNING id, priority)
        INSERT INTO outbox (task_id, priority) SELECT id, priority FROM new""")
    found = scans(await generic_plan(filled, "outbox/claim_due", 200, 30, session=outbox.CLAIM_SESSION))
    assert ("outbox", "outbox_due_idx") in found, found
    assert {index for table, index in found if table == "tasks"} == {"tasks_pkey"}, found
    assert {index for table, index in found if table == "outbox"} <= {"outbox_due_idx", "outbox_pkey"}, found


async def test_marking_handed_over_rows_reads_them_and_their_tasks_by_primary_key(filled):
    """outbox/mark_handed_off, run on the claim connection (a generic plan, outbox.CLAIM_SESSION),
    with a backlog of 5,000 NEW tasks and their rows: its status guard is a CASE, as the claims' are."""
    ids = [row["id"] for row in await filled.fetch("""
        WITH new AS (INSERT INTO tasks (name, kind, timeout_seconds)
                     SELECT 'new ' || n, 'noop', 60 FROM generate_series(1, 5000) AS n RETURNING id, priority)
        INSERT INTO outbox (task_id, priority) SELECT id, priority FROM new RETURNING id""")]
    plan = await generic_plan(filled, "outbox/mark_handed_off", ids[:3], session=outbox.CLAIM_SESSION)
    assert scans_of_tasks(plan) == ["tasks_pkey"]
    assert scans_of_tasks(plan, "outbox") == ["outbox_pkey"]


async def test_only_the_claims_connection_commits_without_waiting_for_the_flush(settings):
    """The dispatcher's claim connection has outbox.CLAIM_SESSION's settings; the pools every other
    write goes through keep synchronous_commit on."""
    claims, others = await dispatcher.claim_pool(settings), await db.create_pool(settings)
    try:
        async with claims.acquire() as conn:
            assert {name: await conn.fetchval(f"SHOW {name}") for name in outbox.CLAIM_SESSION} \
                == outbox.CLAIM_SESSION
        async with others.acquire() as conn:
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await asyncio.gather(claims.close(), others.close())


async def test_a_search_reads_the_trigram_index_of_task_texts_and_tasks_only_for_other_filters(filled):
    """The index branches of a search read task_texts' trigram index; `tasks` only by primary key,
    for the page's rows and for a status (or priority, queue, schedule) filter: without one, the
    API's per-call plan folds that test away, so a count never reads `tasks`."""
    await filled.execute("ANALYZE task_texts")
    since = await filled.fetchval("SELECT now() - interval '1 hour'")
    for statuses, tasks_scans in ((None, []), (["COMPLETED"], ["tasks_pkey"])):
        for since_hour in (None, since):
            args = (statuses, None, "task 12345", 1001, since_hour, "12345", None, None)
            counted = await plan(filled, "tasks/search_count", "force_custom_plan", *args)
            texts = await plan(filled, "tasks/search_count", "force_custom_plan", *args, relation="task_texts")
            assert counted == tasks_scans * len(texts), (statuses, since_hour, counted)
            assert set(texts) == {"task_texts_search_idx"}, (statuses, since_hour, texts)
        page_args = (statuses, None, "task 12345", 20, 0, "12345", 1000, None, None)
        page = await plan(filled, "tasks/search_page", "force_custom_plan", *page_args)
        texts = await plan(filled, "tasks/search_page", "force_custom_plan", *page_args, relation="task_texts")
        # the walk of the newest tasks, the final page's rows, and the filter's lookups
        assert page[0] in ("tasks_created_idx", "tasks_status_created_idx") and set(page[1:]) == {"tasks_pkey"}, page
        assert len(page) == 2 + len(tasks_scans), page
        assert texts == ["task_texts_search_idx"], texts


async def test_the_service_plans_without_jit(pool):
    """A search on 10,000,000 tasks spent 14 ms compiling a never-run branch whose estimate crossed
    jit_above_cost, for 0.5 ms of work: the service's connections have JIT off."""
    assert await pool.fetchval("SHOW jit") == "off"
