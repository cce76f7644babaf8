"""`@handler` declares a kind with its defaults; HANDLER_MODULES loading finds the declared kinds."""

import sys
import textwrap

import pytest
from marshmallow import Schema

from taskservice import handler
from taskservice.handlers import BUILTIN_KINDS, HandlerModuleError, load_registry
from taskservice.kinds import Rate, declared_kinds


def test_the_decorator_keeps_the_function_and_records_every_option():
    class Payload(Schema):
        pass

    def send(task, ctx):
        return None

    decorated = handler("send_email", queue="emails", max_attempts=5, timeout_seconds=30, priority="HIGH",
                        payload_schema=Payload, concurrency=2, rate="100/m")(send)
    assert decorated is send  # a process handler must stay importable by its own name
    (kind,) = declared_kinds(send)
    assert (kind.name, kind.executor, kind.queue, kind.max_attempts, kind.timeout_seconds, kind.priority,
            kind.concurrency, kind.rate) == ("send_email", "thread", "emails", 5, 30, "HIGH", 2, Rate(100, 60))
    assert isinstance(kind.payload_schema, Payload)
    assert str(kind.rate) == "100/m"


def test_async_handlers_run_on_the_loop_and_either_sort_may_run_in_a_process():
    async def a(task, ctx):
        return None

    def b(task, ctx):
        return None

    assert declared_kinds(handler("a")(a))[0].executor == "async"
    assert declared_kinds(handler("a2", executor="process")(a))[-1].executor == "process"
    assert declared_kinds(handler("b", executor="process")(b))[0].executor == "process"


@pytest.mark.parametrize(("options", "message"), [
    ({"rate": "100/d"}, "rate must look like '100/m'"),
    ({"rate": "0/s"}, "rate must look like '100/m'"),
    ({"rate": 100}, "rate must look like '100/m'"),
    ({"max_attempts": 0}, "max_attempts must be a whole number from 1 to 20"),
    ({"timeout_seconds": 86_401}, "timeout_seconds must be a whole number from 1 to 86400"),
    ({"concurrency": True}, "concurrency must be a whole number"),
    ({"priority": "URGENT"}, "priority must be one of LOW, MEDIUM, HIGH"),
    ({"queue": "no spaces"}, "queue 'no spaces' must be 1-100 letters"),
    ({"executor": "fiber"}, "executor must be 'thread' or 'process'"),
    ({"payload_schema": dict}, "payload_schema must be a marshmallow Schema"),
])
def test_a_wrong_option_is_refused_by_name(options, message):
    def send(task, ctx):
        return None

    with pytest.raises((ValueError, TypeError), match=message):
        handler("send", **options)(send)


def test_an_async_handler_cannot_ask_for_a_thread():
    async def send(task, ctx):
        return None

    with pytest.raises(ValueError, match="runs on the event loop"):
        handler("send", executor="thread")(send)


def write_module(directory, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def test_a_module_of_decorated_handlers_and_a_handlers_dict(tmp_path, monkeypatch):
    write_module(tmp_path, "decorated_for_registry", """\
        from taskservice import handler

        @handler("reports.build", max_attempts=2, executor="process")
        @handler("reports.rebuild")
        def build(task, ctx):
            return {"built": True}

        async def legacy(task, ctx):
            return None

        HANDLERS = {"legacy": legacy, "reports.alias": build}
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry = load_registry(["decorated_for_registry"])
    finally:
        sys.modules.pop("decorated_for_registry")
    assert set(registry) == set(BUILTIN_KINDS) | {"reports.build", "reports.rebuild", "legacy", "reports.alias"}
    assert (registry["reports.build"].executor, registry["reports.build"].max_attempts) == ("process", 2)
    assert (registry["reports.rebuild"].executor, registry["reports.rebuild"].max_attempts) == ("thread", None)
    assert registry["legacy"].executor == "async" and registry["legacy"].max_attempts is None
    assert registry["reports.alias"].function is registry["reports.build"].function


@pytest.mark.parametrize(("source", "message"), [
    ("""\
        from taskservice import handler

        @handler("same")
        def one(task, ctx): pass

        @handler("same")
        def two(task, ctx): pass
     """, "HANDLER_MODULES: 'clashing_kinds' declares kind 'same' twice (one and two)"),
    ("""\
        from taskservice import handler

        def make():
            @handler("inner", executor="process")
            def inner(task, ctx): pass
            return inner

        built = make()
     """, "HANDLER_MODULES: 'clashing_kinds' kind 'inner': an executor='process' handler must be a "
          "module-level function"),
    ("""\
        from taskservice import handler

        @handler("bad", rate="fast")
        def bad(task, ctx): pass
     """, "HANDLER_MODULES: importing 'clashing_kinds' raised ValueError: rate must look like '100/m'"),
])
def test_a_module_whose_declarations_cannot_work_is_refused_in_one_line(tmp_path, monkeypatch, source, message):
    write_module(tmp_path, "clashing_kinds", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(HandlerModuleError) as raised:
            load_registry(["clashing_kinds"])
    finally:
        sys.modules.pop("clashing_kinds", None)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
