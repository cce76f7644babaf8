"""Starting and stopping long-running loops: stop events, signals, interruptible waits."""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop`: every loop then winds down and the process exits 0."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def wait_for(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set or `timeout` passes; True if it was set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> bool:
    """Wait until any of `events` is set or `timeout` passes; True if one was set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)


async def supervised(name: str, loop: Callable[[], Awaitable[None]], stop: asyncio.Event,
                     restart_delay: float = 1.0) -> None:
    """Run `loop()` until it returns or `stop` is set, restarting it after an unexpected error.

    Each loop handles the errors it expects (database or broker unavailable);
    anything else is logged with its traceback and the loop starts again after
    a pause, so a process never stays up with a background loop silently dead.
    """
    delay = restart_delay
    while not stop.is_set():
        started = asyncio.get_running_loop().time()
        try:
            await loop()
            return
        except Exception:
            if asyncio.get_running_loop().time() - started > 60:
                delay = restart_delay  # it had been running fine: not a crash loop
            log.exception("%s failed unexpectedly; restarting it in %.0fs", name, delay)
            await wait_for(stop, delay)
            delay = min(delay * 2, 30.0)
