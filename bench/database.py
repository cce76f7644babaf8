"""The bench database: made fresh each run, migrated as `taskservice migrate` does, and filled for the list
benchmark."""

import asyncio
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from taskservice import migrations

# application_name of the bench's own connections that run beside a measurement.
BENCH_APPLICATION = "bench"
# A backend that goes idle publishes its table and WAL counters up to 10 s later
# (PGSTAT_IDLE_INTERVAL, PostgreSQL 15+): snapshots of them wait this long after the work.
STATS_FLUSH_SECONDS = 11
FILL_SQL = (Path(__file__).resolve().parent / "fill_tasks.sql").read_text()


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def recreate(server_url: str, name: str) -> str:
    """Drop and create database `name`, migrate it, and return its URL."""
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(server_url, name)
    try:
        await asyncio.to_thread(migrations.run_dbmate, url, "up")
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"dbmate up failed:\n{exc.output}") from None
    return url


async def server_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT version()")
    finally:
        await conn.close()


async def checkpoint(url: str) -> None:
    """Flush dirty pages now, so a checkpoint does not land in the middle of a measurement."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def rebuild_task_counts(conn: asyncpg.Connection) -> bool:
    """Recount the trigger-kept per status and priority totals (the task_counts table, where the
    schema has it) from the tasks themselves: after a load with triggers off, or a TRUNCATE
    (which fires no row triggers). True if there was such a table."""
    if not await conn.fetchval("SELECT to_regclass('task_counts') IS NOT NULL"):
        return False
    async with conn.transaction():
        await conn.execute("TRUNCATE task_counts")
        await conn.execute("""
            INSERT INTO task_counts (status, priority, shard, n)
            SELECT status, priority, 0, count(*) FROM tasks GROUP BY status, priority""")
    return True


async def rebuild_task_texts(conn: asyncpg.Connection) -> bool:
    """Copy the tasks' searchable text into task_texts (where the schema has it), which its
    insert trigger fills otherwise: after a load with triggers off. Its indexes are dropped
    and rebuilt around the one INSERT. True if there was such a table."""
    if not await conn.fetchval("SELECT to_regclass('task_texts') IS NOT NULL"):
        return False
    indexes = await conn.fetch("""
        SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index AS i
        WHERE i.indrelid = 'task_texts'::regclass
          AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)""")
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['name']}")
    await conn.execute("""
        INSERT INTO task_texts (task_id, created_at, name, description)
        SELECT id, created_at, name, description FROM tasks""")
    for index in indexes:
        await conn.execute(index["definition"])
    await conn.execute("VACUUM (ANALYZE) task_texts")
    return True


async def empty_tasks(url: str) -> None:
    """No tasks, outbox rows or events (and counts to match), then a checkpoint: each
    end-to-end run starts from the same empty tables, whatever ran before it.

    Not analysed: TRUNCATE leaves the tables as a fresh deployment has them, never analysed,
    which the planner takes for at least 10 pages. Analysed empty, they are known to be empty:
    each connection then caches a sequential scan for its foreign-key checks (`tasks` by id, for
    every outbox and history row) and, on a server without autovacuum to analyse them again,
    keeps reading the whole table on every check as it grows (a 10,000-task drain read 190
    million tasks in 35,000 such scans)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE tasks CASCADE")
        await rebuild_task_counts(conn)
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def seed_tasks(url: str, count: int, description: str) -> list[str]:
    """`count` NEW tasks written directly (no outbox rows): ids for the get scenario when it
    runs without the create scenario before it."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("""
            INSERT INTO tasks (name, description, priority, kind, timeout_seconds)
            SELECT 'bench task ' || n, $2, (ARRAY['LOW', 'MEDIUM', 'HIGH'])[1 + n % 3], 'noop', 300
            FROM generate_series(1, $1::integer) AS n
            RETURNING id""", count, description)
        await conn.execute("VACUUM (ANALYZE) tasks")
    finally:
        await conn.close()
    return [str(row["id"]) for row in rows]


async def fill_tasks(url: str, rows: int) -> dict[str, Any]:
    """Replace every task with `rows` generated ones, the way a bulk load is done: secondary
    indexes dropped and rebuilt from their own definitions, triggers off for the session
    (the task_events history and the outbox are not part of the list benchmark; the
    searchable text and the per-status counts are rebuilt afterwards in one statement each), then VACUUM ANALYZE so the
    planner and index-only scans see the table as it is."""
    timings: dict[str, float] = {}
    conn = await asyncpg.connect(url)
    try:
        clock = time.perf_counter()
        await conn.execute("TRUNCATE tasks CASCADE")
        indexes = await conn.fetch("""
            SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
            FROM pg_index AS i
            WHERE i.indrelid = 'tasks'::regclass
              AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)""")
        for index in indexes:
            await conn.execute(f"DROP INDEX {index['name']}")
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("SELECT setseed(0.42)")
        await conn.execute(FILL_SQL, rows)
        timings["insert_s"] = round(time.perf_counter() - clock, 1)

        clock = time.perf_counter()
        for index in indexes:
            await conn.execute(index["definition"])
        timings["indexes_s"] = round(time.perf_counter() - clock, 1)

        clock = time.perf_counter()
        if await rebuild_task_texts(conn):
            timings["task_texts_s"] = round(time.perf_counter() - clock, 1)
            clock = time.perf_counter()
        await conn.execute("RESET session_replication_role")
        if await rebuild_task_counts(conn):
            timings["task_counts_s"] = round(time.perf_counter() - clock, 1)
            clock = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) tasks")
        await conn.execute("CHECKPOINT")
        timings["vacuum_analyze_s"] = round(time.perf_counter() - clock, 1)

        sizes = await conn.fetchrow("""
            SELECT count(*) AS rows,
                   pg_size_pretty(pg_table_size('tasks')) AS table_size,
                   pg_size_pretty(pg_indexes_size('tasks')) AS indexes_size
            FROM tasks""")
        statuses = await conn.fetch("SELECT status, count(*) FROM tasks GROUP BY 1 ORDER BY 2 DESC")
    finally:
        await conn.close()
    return {**timings, **dict(sizes), "statuses": {r["status"]: r["count"] for r in statuses}}


async def explain(url: str, query: str, args: tuple, runs: int = 5) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of `query` with its real arguments, planned for them as
    the API pool plans them (plan_cache_mode = force_custom_plan), plus the median time of
    `runs` plain executions seen from the client (EXPLAIN ANALYZE's own clock reads add
    overhead per row)."""
    conn = await asyncpg.connect(url, server_settings={"plan_cache_mode": "force_custom_plan"})
    try:
        timings = []
        for _ in range(runs + 1):  # the first run only warms caches, as the benchmark's requests did
            clock = time.perf_counter()
            await conn.fetch(query, *args)
            timings.append((time.perf_counter() - clock) * 1000)
        lines = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {query}", *args)
    finally:
        await conn.close()
    plan = "\n".join(row[0] for row in lines)
    execution = next((line for line in plan.splitlines() if line.startswith("Execution Time:")), "")
    return {
        "plan": plan,
        "explain_ms": float(execution.split(":")[1].split()[0]) if execution else None,
        "median_ms": round(sorted(timings[1:])[len(timings[1:]) // 2], 2),
    }


async def sample_wait_events(url: str, seconds: float = 0, every: float = 0.1, *,
                             until: asyncio.Event | None = None,
                             by_query: Counter | None = None) -> dict[str, float]:
    """What the bench database's active backends were doing over the middle 80% of the next
    `seconds` (or from now until `until` is set): share of samples per wait event ("CPU"
    when not waiting). A create run that shows mostly Lock:object is queueing on NOTIFY's
    commit lock, not doing work. `by_query` also counts "event: query" samples, the query
    named by its first line (the sql/ files open with a comment saying what they do)."""
    conn = await asyncpg.connect(url, server_settings={"application_name": BENCH_APPLICATION})
    counts: Counter = Counter()

    def sampling() -> bool:
        return not until.is_set() if until is not None else time.monotonic() < deadline

    try:
        if until is None:
            await asyncio.sleep(seconds * 0.1)
        deadline = time.monotonic() + seconds * 0.8
        while sampling():
            # The bench's own connections (this one, the end-to-end scenarios' pollers) are
            # not the service's work.
            for row in await conn.fetch("""
                    SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS event,
                           left(split_part(ltrim(query), E'\n', 1), 80) AS query
                    FROM pg_stat_activity
                    WHERE datname = current_database() AND state = 'active'
                      AND backend_type = 'client backend' AND application_name <> $1""",
                                        BENCH_APPLICATION):
                counts[row["event"]] += 1
                if by_query is not None:
                    by_query[f"{row['event']}: {row['query']}"] += 1
            await asyncio.sleep(every)
    finally:
        await conn.close()
    total = sum(counts.values())
    return {event: round(n / total, 3) for event, n in counts.most_common(5)} if total else {}


async def activity_snapshot(conn: asyncpg.Connection) -> dict[str, float]:
    """Cumulative counters of the bench database: commits, WAL written and flushed, and
    per table (every table of the schema, whatever the migrations made) the rows inserted,
    updated (and how many of those were HOT: no index entries written) and deleted.
    Busy backends publish their counters about once a second, idle ones within
    STATS_FLUSH_SECONDS."""
    snapshot: dict[str, float] = {}
    database = await conn.fetchrow(
        "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()")
    snapshot.update(commits=database["xact_commit"], rollbacks=database["xact_rollback"])
    wal = await conn.fetchrow("SELECT wal_records, wal_fpi, wal_bytes, wal_write, wal_sync FROM pg_stat_wal")
    snapshot.update({key: float(value) for key, value in wal.items()})
    for row in await conn.fetch("""
            SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
            FROM pg_stat_user_tables WHERE schemaname = current_schema()"""):
        for key in ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_tup_del"):
            snapshot[f"{row['relname']}.{key.removeprefix('n_tup_')}"] = row[key]
    return snapshot


def activity_per(before: dict[str, float], after: dict[str, float], units: int) -> dict[str, float]:
    """What `units` (tasks) cost the database, each: counter deltas divided by `units`."""
    if units <= 0:
        return {}
    return {key: round((after[key] - before.get(key, 0)) / units, 2) for key in after}


async def index_counts(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    """Per table of the schema, its indexes: "full" ones take an entry for every row version,
    "partial" ones only for the rows matching their predicate."""
    rows = await conn.fetch("""
        SELECT t.relname AS table,
               count(*) FILTER (WHERE i.indpred IS NULL) AS full,
               count(*) FILTER (WHERE i.indpred IS NOT NULL) AS partial
        FROM pg_index AS i JOIN pg_class AS t ON t.oid = i.indrelid
        WHERE t.relnamespace = current_schema()::regnamespace
        GROUP BY t.relname""")
    return {row["table"]: {"full": row["full"], "partial": row["partial"]} for row in rows}


async def wal_position(conn: asyncpg.Connection) -> float:
    """The server's WAL position in bytes. Unlike pg_stat_wal's counters it is current at once,
    with no wait for backends to publish them."""
    return float(await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"))


async def wal_lsn(conn: asyncpg.Connection) -> str:
    """The server's WAL insert position, for database_wal."""
    return await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text")


async def database_wal(conn: asyncpg.Connection, start: str, end: str, units: int) -> dict[str, Any] | None:
    """This database's own WAL between two positions, per unit (task), and its largest parts
    by relation (from pg_walinspect): the records that touch its blocks plus the commit and
    other block-less records of the transactions that did. Other databases' writes meanwhile
    do not count, unlike wal_position's. None when the extension is missing or the WAL has
    already been recycled."""
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        for _ in range(50):  # pg_walinspect reads only flushed WAL
            if await conn.fetchval("SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn", end):
                break
            await asyncio.sleep(0.1)
        rows = await conn.fetch(r"""
            WITH db AS (
                SELECT 'rel \d+/' || oid || '/' AS prefix FROM pg_database WHERE datname = current_database()
            ), record AS (
                SELECT xid::text::bigint AS xid, record_length, fpi_length,
                       substring(block_ref from db.prefix || '(\d+)')::oid AS node,
                       block_ref ~ db.prefix AS ours
                FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn), db
            ), writer AS (
                SELECT DISTINCT xid FROM record WHERE ours AND xid <> 0
            )
            SELECT coalesce(c.relname, CASE WHEN r.node IS NULL THEN '(no block: commits)' END,
                            r.node::text) AS relation,
                   count(*) AS records, sum(r.record_length) AS bytes, sum(r.fpi_length) AS fpi_bytes
            FROM record AS r
            LEFT JOIN pg_class AS c ON c.relfilenode = r.node
            WHERE r.ours OR r.xid IN (SELECT xid FROM writer)
            GROUP BY 1
            ORDER BY 3 DESC""", start, end)
    except asyncpg.PostgresError:
        return None
    if not units:
        return None
    return {
        "bytes": round(sum(r["bytes"] for r in rows) / units, 1),
        "records": round(sum(r["records"] for r in rows) / units, 2),
        "fpi_bytes": round(sum(r["fpi_bytes"] for r in rows) / units, 1),
        "by_relation": {r["relation"]: {"bytes": round(r["bytes"] / units, 1),
                                        "records": round(r["records"] / units, 2)} for r in rows},
    }


def write_cost(per_task: dict[str, float], indexes: dict[str, dict[str, int]],
               wal_bytes: float | None = None, own_wal: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a task's writes cost, from activity_per's per-task deltas and the index counts,
    with `wal_bytes` per task from the WAL position over the work alone (else pg_stat_wal's).

    Index entries are counted, not read from a statistic (PostgreSQL keeps none for index
    writes; pg_stat_user_indexes' idx_tup_* count reads): every inserted row and every
    non-HOT update writes a new entry into each index of its table; a HOT update writes none;
    a delete writes none (vacuum removes the entries later). Partial indexes only take the
    rows that match their predicate, so their figure is an upper bound. A GIN index (the
    trigram ones) stores one key per distinct trigram of the row: it counts once here but
    costs more than a B-tree entry. WAL is the whole server's: another database's writes
    meanwhile count too, so it is exact only on an otherwise idle server; `own_wal`
    (database_wal) is this database's alone."""
    by_table = {}
    for table, count in sorted(indexes.items()):
        versions = (per_task.get(f"{table}.ins", 0) + per_task.get(f"{table}.upd", 0)
                    - per_task.get(f"{table}.hot_upd", 0))
        if versions > 0:
            by_table[table] = {"row_versions": round(versions, 2), "full": round(versions * count["full"], 2),
                               "partial_at_most": round(versions * count["partial"], 2)}
    updates = per_task.get("tasks.upd", 0)
    return {
        "wal_bytes": round(wal_bytes, 1) if wal_bytes is not None else per_task.get("wal_bytes"),
        "wal_records": per_task.get("wal_records"),
        "wal_fpi": per_task.get("wal_fpi"),
        "index_entries": round(sum(t["full"] for t in by_table.values()), 2),
        "index_entries_partial_at_most": round(sum(t["partial_at_most"] for t in by_table.values()), 2),
        "index_entries_by_table": by_table,
        "tasks_updates": updates,
        "tasks_hot_share": round(per_task.get("tasks.hot_upd", 0) / updates, 3) if updates else None,
        "database_wal": own_wal,
    }


def format_write_cost(cost: dict[str, Any]) -> str:
    hot = cost["tasks_hot_share"]
    tables = ", ".join(f"{table} {t['full'] + t['partial_at_most']:g}"
                       for table, t in cost["index_entries_by_table"].items())
    return (f"WAL {cost['wal_bytes'] or 0:,.0f} B ({cost['wal_records'] or 0:g} records, "
            f"{cost['wal_fpi'] or 0:g} full pages); index entries {cost['index_entries']:g}"
            f" + up to {cost['index_entries_partial_at_most']:g} in partial indexes ({tables}); "
            f"tasks updates {cost['tasks_updates']:g}, HOT {'-' if hot is None else f'{hot:.0%}'}"
            + format_database_wal(cost.get("database_wal")))


def format_database_wal(own: dict[str, Any] | None) -> str:
    if not own:
        return ""
    largest = ", ".join(f"{name} {part['bytes']:,.0f}" for name, part in list(own["by_relation"].items())[:8])
    return (f"; this database's WAL {own['bytes']:,.0f} B ({own['records']:g} records, full pages "
            f"{own['fpi_bytes']:,.0f} B), largest: {largest}")
