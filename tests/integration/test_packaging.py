"""`pip install .` (not editable) gives a working service: the wheel carries every module, query,
migration and dashboard file, and its `taskservice migrate` migrates a database.

The wheel is built from a copy of what the Dockerfile copies, installed into a fresh venv
(tests/support/venvs.py) and exercised from outside the repository, so nothing is found through
the source tree.
"""

import json
import textwrap
from pathlib import Path

import pytest

from tests.support.services import ROOT, RUN_ID, SERVER_URL, run_dbmate, with_database
from tests.support.venvs import outside_env, run, taskservice_wheel, venv_with

# Run by the installed package: what it finds, as JSON.
REPORT = textwrap.dedent("""
    import importlib, json, pkgutil
    import taskservice
    from taskservice import migrations, sql
    modules = [m.name for m in pkgutil.walk_packages(taskservice.__path__, "taskservice.")]
    for name in modules:
        importlib.import_module(name)
    web = migrations._PACKAGE / "web"
    print(json.dumps({
        "package": taskservice.__file__,
        "modules": modules,
        "queries": {name: text for name, text in sql.QUERIES.items()},
        "migrations": [path.name for path in migrations.migration_files()],
        "schema": migrations.SCHEMA_FILE.read_text(),
        "web": sorted(path.name for path in web.iterdir()),
    }))
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv's python with the wheel installed."""
    tmp = tmp_path_factory.mktemp("packaging")
    return venv_with([taskservice_wheel(tmp)], tmp / "venv")


def test_wheel_carries_modules_queries_migrations_and_dashboard(installed, tmp_path):
    found = json.loads(run(str(installed), "-c", REPORT, cwd=tmp_path, env=outside_env()))

    assert Path(found["package"]).is_relative_to(installed.parent.parent), "taskservice came from outside the venv"
    package = ROOT / "taskservice"
    modules = {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for path in package.rglob("*.py") if path.name != "__main__.py"}
    assert modules - {"taskservice"} <= set(found["modules"]), "modules missing from the wheel"
    queries = {path.relative_to(ROOT / "sql").with_suffix("").as_posix(): path.read_text()
               for path in (ROOT / "sql").rglob("*.sql")}
    assert found["queries"] == queries
    assert found["migrations"] == sorted(path.name for path in (ROOT / "db/migrations").glob("*.sql"))
    assert found["schema"] == (ROOT / "db/schema.sql").read_text()
    assert found["web"] == sorted(path.name for path in (package / "web").iterdir())


def test_installed_cli_migrates_a_database(installed, tmp_path):
    url = with_database(SERVER_URL, f"taskservice_packaging_{RUN_ID}")
    env = {**outside_env(), "DATABASE_URL": url}
    taskservice = str(installed.parent / "taskservice")
    run_dbmate(url, "drop")
    try:
        run(taskservice, "migrate", "create", cwd=tmp_path, env=env)
        run(taskservice, "migrate", "--wait", cwd=tmp_path, env=env)
        status = run(taskservice, "migrate", "status", cwd=tmp_path, env=env)
    finally:
        run_dbmate(url, "drop")
    for path in (ROOT / "db/migrations").glob("*.sql"):
        assert f"[X] {path.name}" in status
    assert "Pending: 0" in status
