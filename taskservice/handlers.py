"""Task handlers: `kind` → `async def handler(task, ctx) -> JSON result`.

Applications add their own by naming modules in HANDLER_MODULES; each such module
exposes a `HANDLERS` dict of kind → handler.
"""

import asyncio
import importlib
import logging
import re
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from uuid import UUID

# What a kind may be called (checked on create and for DEFAULT_KIND).
KIND_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


@dataclass(frozen=True)
class HandlerContext:
    task_id: UUID
    attempt: int
    log: logging.Logger


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


BUILTIN_HANDLERS: Mapping[str, Handler] = MappingProxyType({"noop": noop, "sleep": sleep, "fail": fail})


class HandlerModuleError(Exception):
    """A HANDLER_MODULES entry the worker cannot use; the message is one line naming the module."""


IMPORTABLE_HINT = "a handler module must be importable: installed in this environment or on PYTHONPATH"


def import_handlers(name: str) -> Mapping[str, Handler]:
    """The `HANDLERS` of module `name`, checked: kind names as KIND_PATTERN allows, callables as handlers."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise HandlerModuleError(f"HANDLER_MODULES: cannot import {name!r}: {exc} ({IMPORTABLE_HINT})") from exc
    except Exception as exc:  # the module's own code failed: name its error and where it was raised
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        raise HandlerModuleError(f"HANDLER_MODULES: importing {name!r} raised "
                                 f"{type(exc).__name__}: {exc}{where}") from exc
    handlers = getattr(module, "HANDLERS", None)
    if not isinstance(handlers, Mapping):
        found = "none" if handlers is None else f"a {type(handlers).__name__}"
        raise HandlerModuleError(f"HANDLER_MODULES: {name!r} has no HANDLERS dict of kind -> async handler "
                                 f"(found {found})")
    for kind, handler in handlers.items():
        if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
            raise HandlerModuleError(f"HANDLER_MODULES: {name!r} HANDLERS has kind {kind!r}; kinds must be "
                                     "1-100 letters, digits or _ . : -")
        if not callable(handler):
            raise HandlerModuleError(f"HANDLER_MODULES: {name!r} HANDLERS[{kind!r}] is not callable")
    return handlers


def load_registry(module_names: Sequence[str]) -> Mapping[str, Handler]:
    """The built-ins plus every module's `HANDLERS`; a later module wins on a clash.
    Raises HandlerModuleError for a module that cannot be imported or has no usable HANDLERS."""
    registry = dict(BUILTIN_HANDLERS)
    for name in module_names:
        registry.update(import_handlers(name))
    return MappingProxyType(registry)
