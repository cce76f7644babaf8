"""Every migration's down restores exactly the schema it found: columns (in order), constraints,
indexes, triggers, functions and extensions, as PostgreSQL's catalogs describe them."""

import shutil
import subprocess
from pathlib import Path

import asyncpg

from tests.support.services import ROOT, RUN_ID, SERVER_URL, dbmate_binary, dbmate_url, with_database

SCHEMA_SQL = """
SELECT 'column' AS kind, c.relname || '.' || a.attname AS name,
       concat_ws(' ', row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
                 format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN 'NOT NULL' END,
                 pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated) AS definition
FROM pg_attribute AS a
JOIN pg_class AS c ON c.oid = a.attrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0
  AND NOT a.attisdropped AND c.relname <> 'schema_migrations'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
FROM pg_constraint
WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'schema_migrations'
UNION ALL
SELECT 'index', indexname, indexdef
FROM pg_indexes
WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
UNION ALL
SELECT 'trigger', tgname, pg_get_triggerdef(oid)
FROM pg_trigger
WHERE NOT tgisinternal
UNION ALL
SELECT 'function', p.oid::regprocedure::text, pg_get_functiondef(p.oid)
FROM pg_proc AS p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend AS e WHERE e.objid = p.oid AND e.deptype = 'e')
UNION ALL
SELECT 'extension', extname, extversion
FROM pg_extension
ORDER BY 1, 2
"""


async def schema(url: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(SCHEMA_SQL)]
    finally:
        await conn.close()


def dbmate(url: str, migrations_dir: Path, *args: str) -> None:
    subprocess.run([dbmate_binary(), "--url", dbmate_url(url), "--migrations-dir", str(migrations_dir),
                    "--no-dump-schema", *args], check=True, capture_output=True, text=True)


async def test_each_down_restores_the_schema_before_its_up(tmp_path):
    url = with_database(SERVER_URL, f"taskservice_downs_{RUN_ID}")
    migrations = sorted((ROOT / "db/migrations").glob("*.sql"))
    applied = tmp_path / "migrations"
    applied.mkdir()
    dbmate(url, applied, "drop")
    dbmate(url, applied, "create")
    try:
        before = [await schema(url)]  # before[k]: the schema with the first k migrations
        for migration in migrations:
            shutil.copy(migration, applied)
            dbmate(url, applied, "up")
            before.append(await schema(url))
        for k in range(len(migrations), 0, -1):
            dbmate(url, applied, "rollback")
            assert await schema(url) == before[k - 1], f"{migrations[k - 1].name}: down differs"
    finally:
        dbmate(url, applied, "drop")
