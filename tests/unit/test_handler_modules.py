"""A HANDLER_MODULES entry the worker cannot use stops the process with one line naming it, not a traceback.

The modules are checked before the worker connects to anything, so these run without services.
"""

import os
import sys
import textwrap

import pytest

from taskservice.handlers import BUILTIN_KINDS, HandlerModuleError, load_registry
from tests.support.processes import free_port, process_logging_to
from tests.support.services import ROOT


def write_module(directory, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


@pytest.mark.parametrize(("command", "modules", "expected"), [
    ("worker", "no_such_package.handlers",
     "taskservice: HANDLER_MODULES: cannot import 'no_such_package.handlers': No module named 'no_such_package' "
     "(a handler module must be importable: installed in this environment or on PYTHONPATH)"),
    ("run", "tests.support.handlers_for_tests, json",
     "taskservice: HANDLER_MODULES: 'json' has no @handler functions and no HANDLERS dict of kind -> handler "
     "(found none)"),
    ("worker", "handlers_that_break",
     "taskservice: HANDLER_MODULES: importing 'handlers_that_break' raised KeyError: 'API_TOKEN' at {path}:3"),
    ("worker", "handlers_as_a_list",
     "taskservice: HANDLER_MODULES: 'handlers_as_a_list' has no @handler functions and no HANDLERS dict of "
     "kind -> handler (found a list)"),
])
def test_an_unusable_module_stops_the_process_with_one_line(tmp_path, command, modules, expected):
    write_module(tmp_path, "handlers_that_break", """\
        SETTINGS = {}

        TOKEN = SETTINGS["API_TOKEN"]
        HANDLERS = {}
    """)
    write_module(tmp_path, "handlers_as_a_list", "HANDLERS = []\n")
    log_path = tmp_path / "out.log"
    # Port 1 refuses connections: had the process got past its handler modules, it would
    # log connection failures and retry rather than exit.
    env = {"HANDLER_MODULES": modules, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
           "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "AMQP_URL": "amqp://nobody@127.0.0.1:1/",
           "HOST": "127.0.0.1", "PORT": str(free_port())}
    with process_logging_to(command, env, log_path) as process:
        assert process.wait(30) == 2
    output = log_path.read_text()
    assert output.splitlines() == [expected.format(path=tmp_path / "handlers_that_break.py")], output
    assert "Traceback" not in output


def test_a_module_on_the_path_adds_its_handlers(tmp_path, monkeypatch):
    write_module(tmp_path, "extra_handlers_for_registry", """\
        async def resize(task, ctx):
            return {"resized": True}

        HANDLERS = {"images.resize": resize, "noop": resize}
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry(["extra_handlers_for_registry"])
    assert set(registry) == set(BUILTIN_KINDS) | {"images.resize"}
    assert registry["noop"].function is registry["images.resize"].function  # a later module wins on a clash
    sys.modules.pop("extra_handlers_for_registry")


@pytest.mark.parametrize(("source", "message"), [
    ("HANDLERS = {'bad kind': print}\n",
     "HANDLER_MODULES: 'odd_handlers' HANDLERS has kind 'bad kind'; kinds must be 1-100 letters, digits or _ . : -"),
    ("HANDLERS = {3: print}\n",
     "HANDLER_MODULES: 'odd_handlers' HANDLERS has kind 3; kinds must be 1-100 letters, digits or _ . : -"),
    ("HANDLERS = {'resize': 'resize_image'}\n",
     "HANDLER_MODULES: 'odd_handlers' HANDLERS['resize'] is not callable"),
])
def test_handlers_must_be_callables_under_valid_kinds(tmp_path, monkeypatch, source, message):
    write_module(tmp_path, "odd_handlers", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(HandlerModuleError) as raised:
            load_registry(["odd_handlers"])
    finally:
        sys.modules.pop("odd_handlers", None)
    assert str(raised.value) == message
