"""Task handlers: `kind` → `async def handler(task, ctx) -> JSON result`.

Applications add their own by naming modules in HANDLER_MODULES; each such module
exposes a `HANDLERS` dict of kind → handler.
"""

import asyncio
import importlib
import logging
import re
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


def load_registry(module_names: Sequence[str]) -> Mapping[str, Handler]:
    """The built-ins plus every module's `HANDLERS`; a later module wins on a clash."""
    registry = dict(BUILTIN_HANDLERS)
    for name in module_names:
        module = importlib.import_module(name)
        handlers = getattr(module, "HANDLERS", None)
        if not isinstance(handlers, Mapping):
            raise ImportError(f"handler module {name} has no HANDLERS mapping")
        registry.update(handlers)
    return MappingProxyType(registry)
