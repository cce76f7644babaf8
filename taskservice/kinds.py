"""Kinds: what a handler is called, how it runs, and the defaults its tasks get.

`@handler("send_email", max_attempts=5, ...)` attaches a `Kind` to the function and
returns the function itself, unchanged: nothing is registered anywhere at import time.
The modules named in HANDLER_MODULES are the registry: loading one collects the
functions it declares (taskservice.handlers.load_registry). So importing a handler
module twice, from a test or from both the API and the worker of one process, changes
nothing, and a process handler stays a plain module-level function that its child
process imports by name.
"""

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema

from taskservice.tasks import PRIORITIES

# What a kind may be called (checked on create and for DEFAULT_KIND); a queue name too.
KIND_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
RATE_PATTERN = re.compile(r"([1-9][0-9]{0,8})/([smh])")
PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600}
# async: awaited on the worker's event loop; thread: a thread of its own; process: a child process.
EXECUTORS = ("async", "thread", "process")
# Where the decorator leaves its kinds on the function.
KINDS_ATTRIBUTE = "__taskservice_kinds__"


@dataclass(frozen=True)
class Rate:
    """At most `limit` starts per `period_seconds`, written `"100/m"`."""
    limit: int
    period_seconds: int

    def __str__(self) -> str:
        unit = next(u for u, seconds in PERIOD_SECONDS.items() if seconds == self.period_seconds)
        return f"{self.limit}/{unit}"


def parse_rate(text: str) -> Rate:
    match = RATE_PATTERN.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"rate must look like '100/m' (a count per s, m or h), not {text!r}")
    return Rate(int(match[1]), PERIOD_SECONDS[match[2]])


@dataclass(frozen=True)
class Kind:
    """A kind of task: its handler, how the handler runs, and its defaults (None: the global default)."""
    name: str
    function: Callable[..., Any]
    executor: str = "async"
    queue: str | None = None
    max_attempts: int | None = None
    timeout_seconds: int | None = None
    priority: str | None = None
    payload_schema: Schema | None = None
    concurrency: int | None = None
    rate: Rate | None = None


def _check_int(option: str, value: Any, low: int, high: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{option} must be a whole number from {low} to {high}, not {value!r}")


def declare(name: str, function: Callable[..., Any], *, queue: str | None = None, max_attempts: int | None = None,
            timeout_seconds: int | None = None, priority: str | None = None,
            payload_schema: type[Schema] | Schema | None = None, concurrency: int | None = None,
            rate: str | None = None, executor: str | None = None) -> Kind:
    """The Kind, every option checked; ValueError or TypeError naming the first one that is wrong."""
    if not isinstance(name, str) or not KIND_PATTERN.fullmatch(name):
        raise ValueError(f"kind {name!r} must be 1-100 letters, digits or _ . : -")
    if not callable(function):
        raise TypeError(f"handler for kind {name!r} is not callable")
    is_async = inspect.iscoroutinefunction(function)
    if executor is None:
        executor = "async" if is_async else "thread"
    elif executor not in ("thread", "process"):
        raise ValueError(f"executor must be 'thread' or 'process', not {executor!r}")
    elif executor == "thread" and is_async:
        raise ValueError(f"kind {name!r}: an async def handler runs on the event loop, not in a thread; "
                         "leave out executor (or use 'process')")
    if queue is not None and (not isinstance(queue, str) or not KIND_PATTERN.fullmatch(queue)):
        raise ValueError(f"queue {queue!r} must be 1-100 letters, digits or _ . : -")
    _check_int("max_attempts", max_attempts, 1, 20)
    _check_int("timeout_seconds", timeout_seconds, 1, 86_400)
    _check_int("concurrency", concurrency, 1, 10_000)
    if priority is not None and priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}")
    if isinstance(payload_schema, type) and issubclass(payload_schema, Schema):
        payload_schema = payload_schema()
    if payload_schema is not None and not isinstance(payload_schema, Schema):
        raise TypeError(f"payload_schema must be a marshmallow Schema class or instance, not {payload_schema!r}")
    return Kind(name=name, function=function, executor=executor, queue=queue, max_attempts=max_attempts,
                timeout_seconds=timeout_seconds, priority=priority, payload_schema=payload_schema,
                concurrency=concurrency, rate=None if rate is None else parse_rate(rate))


def handler(name: str, *, queue: str | None = None, max_attempts: int | None = None,
            timeout_seconds: int | None = None, priority: str | None = None,
            payload_schema: type[Schema] | Schema | None = None, concurrency: int | None = None,
            rate: str | None = None, executor: str | None = None) -> Callable[[Callable], Callable]:
    """Declare `function(task, ctx)` as the handler of kind `name`, with its defaults.

    An `async def` runs on the worker's event loop; a plain `def` in a thread of its own;
    `executor="process"` (either sort) in a child process, for CPU-bound work. A create
    that leaves out `max_attempts`, `timeout_seconds`, `priority` or `queue` takes the
    kind's, then the global default (the API must load HANDLER_MODULES too); so is
    `payload` checked against `payload_schema` (a marshmallow Schema) at create. Options
    are checked here, so a wrong one stops the import with its name. `queue` routes the
    kind's tasks (a worker consumes the queues it is given). `concurrency` (attempts running
    at once) and `rate` ("N/s", "N/m" or "N/h": starts) limit the kind over all workers,
    enforced in PostgreSQL when a task is claimed (taskservice.limits; KIND_CONCURRENCY and
    KIND_RATE override them).

    The function is returned unchanged: the module that defines it must be named in
    HANDLER_MODULES (or re-export it), and the decorator may be stacked to give one
    function several kinds.
    """
    def decorate(function: Callable) -> Callable:
        kind = declare(name, function, queue=queue, max_attempts=max_attempts, timeout_seconds=timeout_seconds,
                       priority=priority, payload_schema=payload_schema, concurrency=concurrency, rate=rate,
                       executor=executor)
        setattr(function, KINDS_ATTRIBUTE, (*declared_kinds(function), kind))
        return function
    return decorate


def declared_kinds(function: Any) -> tuple[Kind, ...]:
    """The kinds `@handler` declared on `function` (none for anything else)."""
    kinds = getattr(function, KINDS_ATTRIBUTE, ())
    return kinds if isinstance(kinds, tuple) and all(isinstance(k, Kind) for k in kinds) else ()
