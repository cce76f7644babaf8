"""Task handlers: `kind` → `handler(task, ctx) -> JSON result`, the built-ins, and loading
the modules named in HANDLER_MODULES into a registry of kind → Kind (taskservice.kinds).

A module declares its handlers with `@handler(...)` (`from taskservice import handler`),
or exposes a `HANDLERS` dict of kind → handler (a kind with no defaults), or both.
The API process and the worker both load the same modules: the worker to run the
handlers, the API to know the kinds' defaults and payload schemas.
"""

import asyncio
import importlib
import logging
import pickle
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType, ModuleType
from typing import Any
from uuid import UUID

from taskservice import progress
from taskservice.kinds import KIND_PATTERN, Kind, declare, declared_kinds


class Reported:
    """What ctx.progress returns: already done. A coroutine handler writes `await ctx.progress(...)`
    as it would for any async API; a plain `def` handler calls it without awaiting."""
    __slots__ = ()

    def __await__(self) -> Iterator[None]:
        return iter(())


REPORTED = Reported()


@dataclass(frozen=True)
class HandlerContext:
    """What a handler learns about its attempt. A process handler gets it too (it pickles:
    the logger travels by name), but with `stopping` None: its process is simply ended."""
    task_id: UUID
    attempt: int
    log: logging.Logger
    # Set once the attempt is timed out or cancelled: a thread handler that looks at it
    # can return early; one that does not is abandoned (its result discarded) until it ends.
    stopping: threading.Event | None = None
    # The results of the tasks this one depends on (all COMPLETED), by parent id as text.
    parent_results: Mapping[str, Any] = field(default_factory=dict)
    # Takes a checked progress report, from any thread (taskservice.progress); None: dropped.
    report_progress: Callable[[float, str | None], None] | None = field(default=None, repr=False)

    def progress(self, fraction: float, message: str | None = None) -> Reported:
        """Report how far the attempt has come: `fraction` from 0 to 1 and an optional message of
        at most 1,000 characters (ValueError otherwise). Cheap and safe from any handler, thread
        or process: the worker stores the latest report a few times a second at most, and the
        last one before the attempt's outcome. `await ctx.progress(...)` in a coroutine handler,
        `ctx.progress(...)` in a plain `def` one."""
        report = progress.checked(fraction, message)
        if self.report_progress is not None:
            self.report_progress(*report)
        return REPORTED


Handler = Callable[[Mapping[str, Any], HandlerContext], Awaitable[Any]]


async def noop(task: Mapping[str, Any], ctx: HandlerContext) -> None:
    return None


async def sleep(task: Mapping[str, Any], ctx: HandlerContext) -> dict[str, float]:
    seconds = float(task["payload"].get("seconds", 1))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


async def fail(task: Mapping[str, Any], ctx: HandlerContext) -> dict[str, int]:
    """Raises, for demos and tests; with `payload.fail_attempts` = N only the first N attempts fail."""
    fail_attempts = task["payload"].get("fail_attempts")
    if fail_attempts is None or ctx.attempt <= int(fail_attempts):
        raise RuntimeError(task["payload"].get("message", f"failed on purpose (attempt {ctx.attempt})"))
    return {"succeeded_on_attempt": ctx.attempt}


BUILTIN_KINDS: Mapping[str, Kind] = MappingProxyType(
    {name: Kind(name, function) for name, function in (("noop", noop), ("sleep", sleep), ("fail", fail))})


class HandlerModuleError(Exception):
    """A HANDLER_MODULES entry the worker cannot use; the message is one line naming the module."""


IMPORTABLE_HINT = "a handler module must be importable: installed in this environment or on PYTHONPATH"


def import_handlers(name: str) -> Mapping[str, Kind]:
    """The kinds module `name` declares: its `@handler` functions (module-level names, so a
    package may re-export them), then its `HANDLERS` dict, checked."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise HandlerModuleError(f"HANDLER_MODULES: cannot import {name!r}: {exc} ({IMPORTABLE_HINT})") from exc
    except Exception as exc:  # the module's own code failed: name its error and where it was raised
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        raise HandlerModuleError(f"HANDLER_MODULES: importing {name!r} raised "
                                 f"{type(exc).__name__}: {exc}{where}") from exc
    kinds = decorated_kinds(name, module)
    handlers = getattr(module, "HANDLERS", None)
    if (handlers is None and not kinds) or (handlers is not None and not isinstance(handlers, Mapping)):
        found = "none" if handlers is None else f"a {type(handlers).__name__}"
        raise HandlerModuleError(f"HANDLER_MODULES: {name!r} has no @handler functions and no HANDLERS dict "
                                 f"of kind -> handler (found {found})")
    for kind, function in (handlers or {}).items():
        if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
            raise HandlerModuleError(f"HANDLER_MODULES: {name!r} HANDLERS has kind {kind!r}; kinds must be "
                                     "1-100 letters, digits or _ . : -")
        if not callable(function):
            raise HandlerModuleError(f"HANDLER_MODULES: {name!r} HANDLERS[{kind!r}] is not callable")
        # A decorated function keeps its declared defaults under the dict's kind name too.
        declared = declared_kinds(function)
        try:
            kinds[kind] = replace(declared[0], name=kind) if declared else declare(kind, function)
        except ValueError as exc:
            raise HandlerModuleError(f"HANDLER_MODULES: {name!r} HANDLERS[{kind!r}]: {exc}") from exc
    for kind in kinds.values():
        check_process_handler(name, kind)
    return kinds


def decorated_kinds(module_name: str, module: ModuleType) -> dict[str, Kind]:
    kinds: dict[str, Kind] = {}
    for value in list(vars(module).values()):
        for kind in declared_kinds(value):
            other = kinds.get(kind.name)
            if other is not None and other.function is not kind.function:
                raise HandlerModuleError(
                    f"HANDLER_MODULES: {module_name!r} declares kind {kind.name!r} twice "
                    f"({other.function.__qualname__} and {kind.function.__qualname__})")
            kinds[kind.name] = kind
    return kinds


def check_process_handler(module_name: str, kind: Kind) -> None:
    """A process handler travels to its child by reference, as module and name: it must be one
    the child can import (a module-level function, not a lambda or a closure)."""
    if kind.executor != "process":
        return
    try:
        pickle.dumps(kind.function)
    except Exception as exc:
        raise HandlerModuleError(f"HANDLER_MODULES: {module_name!r} kind {kind.name!r}: an executor='process' "
                                 f"handler must be a module-level function ({type(exc).__name__}: {exc})") from exc


def load_registry(module_names: Sequence[str]) -> Mapping[str, Kind]:
    """The built-ins plus every module's kinds; a later module wins on a clash.
    Raises HandlerModuleError for a module that cannot be imported or declares no usable handlers."""
    registry = dict(BUILTIN_KINDS)
    for name in module_names:
        registry.update(import_handlers(name))
    return MappingProxyType(registry)
