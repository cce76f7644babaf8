"""Static checks of the invoices example's deployment files (examples/invoices): its compose
override against docker-compose.yml, its Dockerfile against the service's image, and the
handler module both name. Docker need not be installed: the files are parsed."""

import shlex
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from taskservice.handlers import load_registry
from taskservice.settings import load_settings
from tests.unit.test_compose import SERVICES, dockerfile_instructions, environment

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "examples" / "invoices"
OVERRIDE: dict = yaml.safe_load((EXAMPLE / "compose.yml").read_text())["services"]
INSTRUCTIONS = dockerfile_instructions(EXAMPLE / "Dockerfile")
# The services that run the example's handlers: its workers, and the api that checks their payloads.
RUNS_HANDLERS = ("api", "worker")


def override_environment(service: str) -> dict[str, str]:
    env = OVERRIDE[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, args in INSTRUCTIONS:
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def test_the_override_changes_only_services_of_the_base_file():
    assert set(OVERRIDE) == set(RUNS_HANDLERS)
    assert set(OVERRIDE) <= set(SERVICES)


@pytest.mark.parametrize("service", RUNS_HANDLERS)
def test_handler_services_build_the_example_under_a_tag_of_their_own(service):
    build = OVERRIDE[service]["build"]
    # Compose resolves the override's paths from the first file's directory, the repository root.
    assert (ROOT / build["context"]).resolve() == EXAMPLE
    assert (EXAMPLE / build.get("dockerfile", "Dockerfile")).is_file()
    # Tagged as the base image, the build would replace the image it builds on.
    assert OVERRIDE[service]["image"] != SERVICES[service]["image"]


@pytest.mark.parametrize("service", RUNS_HANDLERS)
def test_the_example_image_builds_on_the_services_image(service):
    froms = [args for keyword, args in INSTRUCTIONS if keyword == "FROM"]
    assert froms == ["${TASKSERVICE_IMAGE}"]
    (default,) = [args.split("=", 1)[1] for keyword, args in INSTRUCTIONS
                  if keyword == "ARG" and args.startswith("TASKSERVICE_IMAGE=")]
    assert default == SERVICES["migrate"]["image"], "a plain `docker build` starts from the image `make start` builds"
    # Under compose, TASKSERVICE_IMAGE names the image another service builds, so it is built first.
    build = OVERRIDE[service]["build"]
    context = build["args"]["TASKSERVICE_IMAGE"]
    base_service = build["additional_contexts"][context].removeprefix("service:")
    assert base_service in SERVICES and base_service not in OVERRIDE
    assert SERVICES[base_service]["build"] == "."
    assert SERVICES[base_service]["image"] == default


def test_the_example_image_installs_as_root_and_runs_as_app():
    base_users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
    users = [args for keyword, args in INSTRUCTIONS if keyword == "USER"]
    assert users == ["root", base_users[-1]]
    root_at, back_at = (i for i, (keyword, _) in enumerate(INSTRUCTIONS) if keyword == "USER")
    installs = [i for i, (keyword, args) in enumerate(INSTRUCTIONS) if keyword == "RUN" and "pip install" in args]
    assert installs and all(root_at < i < back_at for i in installs)
    assert not any(flag in INSTRUCTIONS[i][1].split() for i in installs for flag in ("-e", "--editable"))
    for keyword, args in INSTRUCTIONS:
        if keyword == "COPY":
            for source in args.split()[:-1]:
                assert (EXAMPLE / source).exists(), f"the Dockerfile copies {source}, which the example lacks"


def test_handler_modules_are_the_same_everywhere_and_exist():
    modules = {override_environment(service)["HANDLER_MODULES"] for service in RUNS_HANDLERS}
    assert modules == {dockerfile_env()["HANDLER_MODULES"]}
    packages = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for module in modules.pop().split(","):
        assert module.split(".")[0] in packages, f"{module} is not in a package the example installs"
        assert (EXAMPLE / Path(*module.split("."))).with_suffix(".py").is_file()


@pytest.mark.parametrize("service", RUNS_HANDLERS)
def test_merged_environment_is_valid_settings(service):
    # Compose merges environment mappings key by key: the base file's settings stay.
    settings = load_settings({**environment(service), **override_environment(service)})
    assert settings.handler_modules == ("invoices.handlers",)
    assert settings.dispatcher_embedded is False


def test_the_worker_stays_scalable():
    assert "container_name" not in OVERRIDE["worker"] and not OVERRIDE["worker"].get("ports")


def test_the_handler_module_declares_the_three_kinds(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    try:
        registry = load_registry([dockerfile_env()["HANDLER_MODULES"]])
    finally:
        for name in [name for name in sys.modules if name == "invoices" or name.startswith("invoices.")]:
            del sys.modules[name]
    executors = {"render_invoice": "async", "email_invoice": "thread", "invoice_thumbnail": "process"}
    assert {name: registry[name].executor for name in executors} == executors
    assert registry["render_invoice"].payload_schema is not None
