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


@handler("counted_sleep_thread")
def counted_sleep_thread(task, ctx):
    """counted_sleep as a plain def: it runs in a thread of the worker's process."""
    RUNS[str(ctx.task_id)] += 1
    time.sleep(task["payload"]["seconds"])
    return {"slept": task["payload"]["seconds"]}


@handler("counted_sleep_process", executor="process")
def counted_sleep_process(task, ctx):
    """counted_sleep in a child process, which cannot reach RUNS: each run is a line in `payload.runs_file`."""
    with open(task["payload"]["runs_file"], "a") as runs:
        runs.write(f"{ctx.task_id}\n")
    time.sleep(task["payload"]["seconds"])
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


@handler("progress_steps")
async def progress_steps(task, ctx):
    """Reports `payload.steps` steps, `payload.pause` seconds apart ("step i of n")."""
    steps = task["payload"]["steps"]
    for step in range(1, steps + 1):
        await ctx.progress(step / steps, f"step {step} of {steps}")
        await asyncio.sleep(task["payload"].get("pause", 0))
    return {"steps": steps}


@handler("progress_fraction")
async def progress_fraction(task, ctx):
    """Reports `payload.fraction` as it is: a bad one raises in the handler."""
    await ctx.progress(task["payload"]["fraction"])
    return {"reported": task["payload"]["fraction"]}


@handler("sync_progress")
def sync_progress(task, ctx):
    """A plain def reporting from its thread: 1/3, 2/3, then 3/3 "done", `payload.pause` seconds apart."""
    for step in (1, 2, 3):
        ctx.progress(step / 3, "done" if step == 3 else f"{step} of 3")
        time.sleep(task["payload"].get("pause", 0))
    return {"thread": threading.current_thread().name}


@handler("process_progress", executor="process")
def process_progress(task, ctx):
    """A process handler reporting through its pipe: 0.5, then 1.0 "done in <pid>"."""
    ctx.progress(0.5, "halfway")
    time.sleep(task["payload"].get("pause", 0))
    ctx.progress(1.0, f"done in {os.getpid()}")
    return {"pid": os.getpid()}


@handler("sync_progress_gates")
def sync_progress_gates(task, ctx):
    """Reports 25% "a quarter", waits for gate `<gate>.1`, reports 75% "three quarters", waits for `<gate>.2`."""
    name = task["payload"]["gate"]
    ctx.progress(0.25, "a quarter")
    GATES.setdefault(f"{name}.1", threading.Event()).wait(60)
    ctx.progress(0.75, "three quarters")
    GATES.setdefault(f"{name}.2", threading.Event()).wait(60)
    return {"gate": name}


# Test-only record of the `two_at_a_time` handlers running now, and the most seen at once, over
# every worker of the test's process (the `running` fixture runs them all in one loop).
LIMITED_RUNS = {"now": 0, "most": 0, "runs": 0}


@handler("two_at_a_time", concurrency=2)
async def two_at_a_time(task, ctx):
    """Sleeps `payload.seconds`, counted in LIMITED_RUNS while it runs."""
    LIMITED_RUNS["now"] += 1
    LIMITED_RUNS["runs"] += 1
    LIMITED_RUNS["most"] = max(LIMITED_RUNS["most"], LIMITED_RUNS["now"])
    try:
        await asyncio.sleep(task["payload"]["seconds"])
    finally:
        LIMITED_RUNS["now"] -= 1
    return {"slept": task["payload"]["seconds"]}


# Test-only: the events a `gated_pair` handler waits on, by the name in its payload.
ASYNC_GATES: dict[str, asyncio.Event] = {}


@handler("gated_pair", concurrency=2)
async def gated_pair(task, ctx):
    """Waits (up to a minute) until the test opens the gate its payload names."""
    gate = ASYNC_GATES.setdefault(task["payload"]["gate"], asyncio.Event())
    async with asyncio.timeout(60):
        await gate.wait()
    return {"gate": task["payload"]["gate"]}


# Test-only count of `twenty_a_second` runs per task id.
RATED_RUNS: Counter[str] = Counter()


@handler("twenty_a_second", rate="20/s")
async def twenty_a_second(task, ctx):
    RATED_RUNS[str(ctx.task_id)] += 1
    return {}


@handler("count_parent_results")
async def count_parent_results(task, ctx):
    """How many parent results the task sees, and their sum where they are numbers (a fan-in)."""
    numbers = [r for r in ctx.parent_results.values() if isinstance(r, int)]
    return len(ctx.parent_results) if not numbers else {"parents": len(ctx.parent_results), "sum": sum(numbers)}
