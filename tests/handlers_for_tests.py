"""A handler module loaded through HANDLER_MODULES, as an application's would be."""

import asyncio

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


HANDLERS = {"watched_sleep": watched_sleep, "echo": echo}
