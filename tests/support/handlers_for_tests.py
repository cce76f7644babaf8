"""A handler module loaded through HANDLER_MODULES, as an application's would be."""

import asyncio
import logging
from collections import Counter

from taskservice.handlers import BUILTIN_HANDLERS

log = logging.getLogger(__name__)

# Test-only record of which tasks' handlers saw a CancelledError.
CANCELLED_TASKS: list[str] = []


async def watched_sleep(task, ctx):
    try:
        await asyncio.sleep(task["payload"]["seconds"])
    except asyncio.CancelledError:
        CANCELLED_TASKS.append(str(ctx.task_id))
        raise
    return {"slept": task["payload"]["seconds"]}


async def echo(task, ctx):
    return {"payload": task["payload"], "attempt": ctx.attempt}


async def chatty(task, ctx):
    log.info("working on it")  # no ids passed: the worker's log context adds task_id and attempt
    return {"said": "working on it"}


async def big_result(task, ctx):
    """A result of about `payload.bytes` bytes of JSON."""
    return {"blob": "x" * task["payload"]["bytes"]}


async def nul_result(task, ctx):
    return {"text": "a\x00b"}


# Task ids whose first run already failed (test-only state, like CANCELLED_TASKS).
FAILED_ONCE: set[str] = set()


async def fail_first_run(task, ctx):
    """Fails the first time it sees a task, whatever the attempt number: a retried task succeeds."""
    if str(ctx.task_id) not in FAILED_ONCE:
        FAILED_ONCE.add(str(ctx.task_id))
        raise RuntimeError("first run fails")
    return {"ran_again": True}


async def raises_cancelled(task, ctx):
    """A handler that lets a CancelledError of its own escape (nobody cancelled the attempt)."""
    raise asyncio.CancelledError()


async def raises_timeout(task, ctx):
    """A handler whose own operation timed out, well within the task's timeout."""
    raise TimeoutError("upstream took too long")


# Test-only count of handler runs per task id: a run that a fault doubled shows as 2.
RUNS: Counter[str] = Counter()


async def counted_sleep(task, ctx):
    RUNS[str(ctx.task_id)] += 1
    await asyncio.sleep(task["payload"]["seconds"])
    return {"slept": task["payload"]["seconds"]}


async def counted(task, ctx):
    """Appends "<task id> <attempt>" to the file `payload.runs_file` before doing anything else,
    then behaves as the built-in `payload.then` (noop, sleep or fail) with the same payload.
    The line is written and closed at once, so it survives a kill -9 of the worker a moment later."""
    with open(task["payload"]["runs_file"], "a") as runs:
        runs.write(f"{ctx.task_id} {ctx.attempt}\n")
    return await BUILTIN_HANDLERS[task["payload"].get("then", "noop")](task, ctx)


HANDLERS = {"watched_sleep": watched_sleep, "echo": echo, "chatty": chatty,
            "big_result": big_result, "nul_result": nul_result, "fail_first_run": fail_first_run,
            "raises_cancelled": raises_cancelled, "raises_timeout": raises_timeout,
            "counted_sleep": counted_sleep, "counted": counted}
