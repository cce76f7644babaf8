"""Every migration goes up, comes down, and goes up again, on a database of its own."""

import asyncpg

from tests.support.services import ROOT, RUN_ID, SERVER_URL, run_dbmate, with_database

TABLES = {"tasks", "outbox", "task_events"}


async def tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows} - {"schema_migrations"}


async def test_migrations_up_down_up():
    url = with_database(SERVER_URL, f"taskservice_migrations_{RUN_ID}")
    migrations = sorted((ROOT / "db/migrations").glob("*.sql"))
    assert migrations
    run_dbmate(url, "drop")
    run_dbmate(url, "create")
    try:
        run_dbmate(url, "up")
        assert TABLES <= await tables(url)
        for _ in migrations:
            run_dbmate(url, "rollback")
        assert await tables(url) == set()
        run_dbmate(url, "up")
        assert TABLES <= await tables(url)
    finally:
        run_dbmate(url, "drop")
