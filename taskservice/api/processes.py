"""`taskservice api --processes N`: N API processes on one port, kept running by a parent.

Each child is an ordinary `taskservice api` process (its own event loop, database pool, embedded
dispatcher, connection cap and /metrics) listening with SO_REUSEPORT, so the kernel spreads new
connections among them. The parent serves nothing: it starts the children, forwards SIGTERM and
SIGINT to them and exits 0 once every one has stopped cleanly.

A child that exits within STARTUP_SECONDS of starting could not start (a bad setting, the port
held by a program without SO_REUSEPORT, the database unreachable): the parent stops the others
and exits 1, as one process would, so the failure reaches whatever supervises the service. A child
that dies after running longer is logged and replaced, and its siblings keep serving meanwhile;
only the connections it held are lost.
"""

import asyncio
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass

from taskservice.lifecycle import stop_on_signals, wait_for
from taskservice.settings import Settings

log = logging.getLogger(__name__)

STARTUP_SECONDS = 10.0
ORPHAN_CHECK_SECONDS = 1.0


def reuse_port_available() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


@dataclass(frozen=True)
class Child:
    slot: int
    process: asyncio.subprocess.Process
    started: float


async def start_child(slot: int) -> Child:
    # A fresh interpreter rather than a fork: the child starts like any `taskservice api`, from
    # the same environment, and the parent never holds an event loop or pool a fork would copy.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "taskservice", "api", "--processes", "1", "--child-of", str(os.getpid()),
        stdin=asyncio.subprocess.DEVNULL)
    return Child(slot, process, asyncio.get_running_loop().time())


def describe_exit(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with {code}"


async def supervise(settings: Settings, count: int) -> int:
    """Run `count` API processes until SIGTERM or SIGINT; the exit code for the whole service."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    loop = asyncio.get_running_loop()
    children = [await start_child(slot) for slot in range(count)]
    log.info("api: %d processes serving http://%s:%d (pids %s)", count, settings.host, settings.port,
             ", ".join(str(child.process.pid) for child in children))
    exits = {asyncio.ensure_future(child.process.wait()): child for child in children}
    stopping = asyncio.ensure_future(stop.wait())
    code = 0
    while not stop.is_set():
        done, _ = await asyncio.wait([stopping, *exits], return_when=asyncio.FIRST_COMPLETED)
        for finished in done - {stopping}:
            child = exits.pop(finished)
            ran = loop.time() - child.started
            how = describe_exit(child.process.returncode)
            if ran < STARTUP_SECONDS:
                log.error("api process %d (pid %d) %s %.1fs after starting: stopping the others",
                          child.slot, child.process.pid, how, ran)
                code = 1
                stop.set()
            else:
                replacement = await start_child(child.slot)
                log.error("api process %d (pid %d) %s unexpectedly; replaced by pid %d",
                          child.slot, child.process.pid, how, replacement.process.pid)
                exits[asyncio.ensure_future(replacement.process.wait())] = replacement
    stopping.cancel()
    running = [child for child in exits.values() if child.process.returncode is None]
    log.info("api: stopping %d processes", len(running))
    for child in running:
        child.process.send_signal(signal.SIGTERM)
    for child, exit_code in zip(exits.values(), await asyncio.gather(*exits), strict=True):
        if exit_code != 0:
            log.error("api process %d (pid %d) %s while stopping", child.slot, child.process.pid,
                      describe_exit(exit_code))
            code = 1
    return code


async def serve_as_child(settings: Settings, parent_pid: int, stop: asyncio.Event) -> None:
    """One of the parent's API processes: serve on the shared port until `stop`, or until the
    parent is gone (killed without the chance to stop its children), so none outlives it."""

    from taskservice.api.server import serve  # here: the parent never loads the app

    async def stop_when_orphaned() -> None:
        while not await wait_for(stop, ORPHAN_CHECK_SECONDS):
            if os.getppid() != parent_pid:
                log.warning("api: parent process %d is gone; stopping", parent_pid)
                stop.set()

    await asyncio.gather(serve(settings, stop, reuse_port=True), stop_when_orphaned())
