"""The migrations against db/schema.sql and against themselves, each on a database of its own.

`up` must give exactly the committed db/schema.sql (what reviewers read), and each migration's
down must restore exactly the schema before it. Schemas are compared as dbmate dumps them
(pg_dump): where pg_dump is missing or older than the server, as on a laptop running only
`make start`, those tests skip, unless REQUIRE_PG_DUMP is set (CI sets it).
"""

import asyncio
import difflib
import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path

import asyncpg
import pytest

from taskservice import migrations
from tests.support.services import RUN_ID, SERVER_URL, run_dbmate, with_database

_databases = itertools.count()
# Lines that differ between pg_dump versions (15 and 17 here) or runs, not between schemas.
_VERSION_NOISE = ("--", "SET ", "SELECT pg_catalog.set_config(", "\\restrict", "\\unrestrict")


def normalized(schema: str) -> list[str]:
    return [line.rstrip() for line in schema.splitlines() if line.strip() and not line.startswith(_VERSION_NOISE)]


def schema_diff(expected: list[str], actual: list[str]) -> str:
    return "\n".join(difflib.unified_diff(expected, actual, "expected", "actual", lineterm=""))


async def _server_major(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def pg_dump() -> None:
    """dbmate dumps the schema with pg_dump, which refuses a server newer than itself."""
    def missing(reason: str) -> None:
        if os.environ.get("REQUIRE_PG_DUMP"):
            pytest.fail(f"{reason}; install PostgreSQL's client tools (postgresql-client)")
        pytest.skip(reason)

    found = shutil.which("pg_dump")
    if not found:
        missing("pg_dump is not installed")
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=True).stdout
    client_major = int(re.search(r"(\d+)", version).group(1))
    server_major = asyncio.run(_server_major(SERVER_URL))
    if client_major < server_major:
        missing(f"pg_dump {client_major} cannot dump PostgreSQL {server_major}")


@pytest.fixture
def database() -> str:
    """The URL of an empty database made for one test, dropped afterwards."""
    url = with_database(SERVER_URL, f"taskservice_migrations_{RUN_ID}_{next(_databases)}")
    run_dbmate(url, "drop")
    run_dbmate(url, "create")
    yield url
    run_dbmate(url, "drop")


def dump(url: str, path: Path) -> list[str]:
    run_dbmate(url, "dump", schema_file=path)
    return normalized(path.read_text())


def test_migrations_exist_and_ship_with_the_package():
    files = migrations.migration_files()
    assert files, f"no migrations under {migrations.MIGRATIONS_DIR}"
    assert all(re.fullmatch(r"\d{14}_[a-z0-9_]+\.sql", path.name) for path in files), [p.name for p in files]
    for path in files:
        text = path.read_text()
        assert "-- migrate:up" in text and "-- migrate:down" in text, f"{path.name} needs an up and a down"


def test_up_gives_the_committed_schema(database, pg_dump, tmp_path):
    run_dbmate(database, "up", schema_file=tmp_path / "schema.sql")
    committed = normalized(migrations.SCHEMA_FILE.read_text())
    migrated = normalized((tmp_path / "schema.sql").read_text())
    assert migrated == committed, (
        "db/schema.sql differs from what the migrations produce: run `make schema` and commit it\n"
        + schema_diff(committed, migrated))


def test_each_down_restores_the_schema_before_its_migration(database, pg_dump, tmp_path):
    files = migrations.migration_files()
    # Up one migration at a time, remembering the schema after each.
    applied = tmp_path / "applied"
    applied.mkdir()
    after = []
    for path in files:
        shutil.copy(path, applied)
        run_dbmate(database, "up", migrations_dir=applied)
        after.append(dump(database, tmp_path / f"up_{path.stem}.sql"))

    # Then down one at a time, newest first: each must leave the schema the one before it gave.
    for index in reversed(range(len(files))):
        run_dbmate(database, "rollback")
        now = dump(database, tmp_path / f"down_{files[index].stem}.sql")
        if index:
            assert now == after[index - 1], (
                f"rolling back {files[index].name} does not restore the schema before it\n"
                + schema_diff(after[index - 1], now))
        else:
            # Nothing left but dbmate's own bookkeeping table.
            created = [line for line in now if line.startswith(("CREATE", "ALTER", "COMMENT"))]
            bookkeeping = ["CREATE TABLE public.schema_migrations (", "ALTER TABLE ONLY public.schema_migrations"]
            assert created == bookkeeping, f"rolling back {files[0].name} leaves objects behind:\n" + "\n".join(now)

    # And up again, all at once, gives the same schema as the first time.
    run_dbmate(database, "up")
    again = dump(database, tmp_path / "up_again.sql")
    assert again == after[-1], "up -> down -> up changed the schema\n" + schema_diff(after[-1], again)


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows} - {"schema_migrations"}


async def test_up_down_up_without_pg_dump(database):
    """The same round trip, checked by table names only, so it runs where pg_dump does not."""
    run_dbmate(database, "up")
    tables = await _tables(database)
    assert {"tasks", "outbox", "task_events", "task_counts", "stream_listeners"} <= tables
    for _ in migrations.migration_files():
        run_dbmate(database, "rollback")
    assert await _tables(database) == set()
    run_dbmate(database, "up")
    assert await _tables(database) == tables
