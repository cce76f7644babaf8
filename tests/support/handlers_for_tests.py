"""A handler module loaded through HANDLER_MODULES, as an application's would be: a HANDLERS
dict (the first handlers) and `@handler` declarations (the kinds further down), side by side."""

import asyncio
import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path

from marshmallow import Schema, fields

from taskservice import handler
from taskservice.handlers import BUILTIN_KINDS

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
    return await BUILTIN_KINDS[task["payload"].get("then", "noop")].function(task, ctx)


HANDLERS = {"watched_sleep": watched_sleep, "echo": echo, "chatty": chatty,
            "big_result": big_result, "nul_result": nul_result, "fail_first_run": fail_first_run,
            "raises_cancelled": raises_cancelled, "raises_timeout": raises_timeout,
            "counted_sleep": counted_sleep, "counted": counted}


class EmailPayload(Schema):
    to = fields.Email(required=True)
    subject = fields.String(required=True)


@handler("send_email", queue="emails", max_attempts=5, timeout_seconds=30, priority="HIGH",
         payload_schema=EmailPayload, concurrency=2, rate="100/m")
async def send_email(task, ctx):
    return {"sent_to": task["payload"]["to"]}


@handler("sync_echo")
def sync_echo(task, ctx):
    """A plain def: it runs in a thread of its own."""
    return {"payload": task["payload"], "attempt": ctx.attempt, "thread": threading.current_thread().name}


# Test-only gates a `sync_wait` handler blocks on, by the name in its payload; and which gates'
# handlers started and ended (in the worker's thread).
GATES: dict[str, threading.Event] = {}
STARTED: set[str] = set()
ENDED: set[str] = set()


@handler("sync_wait")
def sync_wait(task, ctx):
    """Blocks until the test opens its gate, never looking at `ctx.stopping`: a thread that cannot be stopped."""
    name = task["payload"]["gate"]
    STARTED.add(name)
    try:
        GATES.setdefault(name, threading.Event()).wait(60)
    finally:
        ENDED.add(name)
    return {"gate": name}


@handler("in_process", executor="process")
def in_process(task, ctx):
    """Writes its pid to `payload.pid_file`, then spins the CPU for `payload.seconds` (or raises `payload.error`)."""
    Path(task["payload"]["pid_file"]).write_text(str(os.getpid()))
    if "error" in task["payload"]:
        raise ValueError(task["payload"]["error"])
    deadline = time.monotonic() + task["payload"].get("seconds", 0)
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
    return {"pid": os.getpid(), "task_id": str(ctx.task_id), "attempt": ctx.attempt}


@handler("loop_blocker")
async def loop_blocker(task, ctx):
    """An async handler that never yields: a CPU loop for `payload.seconds`, each run noted in `payload.runs_file`."""
    with open(task["payload"]["runs_file"], "a") as runs:
        runs.write(f"{ctx.task_id} {ctx.attempt}\n")
    deadline = time.monotonic() + task["payload"]["seconds"]
    while time.monotonic() < deadline:
        pass
    return {"blocked_for": task["payload"]["seconds"]}


@handler("count_parent_results")
async def count_parent_results(task, ctx):
    """How many parent results the task sees, and their sum where they are numbers (a fan-in)."""
    numbers = [r for r in ctx.parent_results.values() if isinstance(r, int)]
    return len(ctx.parent_results) if not numbers else {"parents": len(ctx.parent_results), "sum": sum(numbers)}
