"""Background loops survive unexpected errors."""

import asyncio
import logging

from taskservice.lifecycle import supervised


async def test_a_failing_loop_is_logged_and_restarted(caplog):
    runs = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("surprise")

    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(supervised("flaky loop", flaky, asyncio.Event(), restart_delay=0.01), 5)
    assert len(runs) == 3
    assert sum("flaky loop failed unexpectedly" in r.message for r in caplog.records) == 2


async def test_stop_ends_the_restarts():
    stop = asyncio.Event()

    async def always_fails() -> None:
        stop.set()
        raise RuntimeError("again")

    await asyncio.wait_for(supervised("doomed loop", always_fails, stop, restart_delay=10), 2)
