"""Running a handler as its kind says: on the event loop, in a thread, or in a child process.

All three are awaited the same way, so an attempt's timeout and cancel (a CancelledError
in the awaiting task) reach each of them:
- async: the handler's coroutine is cancelled.
- thread: a thread cannot be stopped from outside. It is told (`ctx.stopping` is set), its
  result is discarded, and it is counted in taskservice_abandoned_threads until it ends.
- process: the child is terminated (SIGTERM, then SIGKILL after PROCESS_KILL_GRACE_SECONDS),
  so nothing of the attempt outlives it (but processes the handler started itself).

A thread handler gets a thread of its own rather than a pool's: the worker's attempt
slots already bound how many run at once (WORKER_CONCURRENCY), and an abandoned thread
would otherwise keep a pool slot from the attempts that follow. A process handler gets a
process of its own for the same reason, and because only a process of its own can be
ended without ending others' attempts. Processes start from a fork server (spawn where
there is none): never a fork of the worker, whose event loop, connections and threads a
child must not inherit.
"""

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import multiprocessing
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

from taskservice import metrics
from taskservice.handlers import HandlerContext
from taskservice.kinds import Kind
from taskservice.logs import JsonFormatter, configure_logging, log_context

log = logging.getLogger(__name__)

PROCESS_KILL_GRACE_SECONDS = 5.0
# How often a process's supervising thread looks whether the attempt gave up on it.
STOP_CHECK_SECONDS = 0.1


async def run(kind: Kind, task: Mapping[str, Any], ctx: HandlerContext) -> Any:
    """The handler's result, however it runs; cancelling the caller stops it (module docstring)."""
    if kind.executor == "thread":
        return await in_thread(kind.function, task, ctx)
    if kind.executor == "process":
        return await in_process(kind.function, task, ctx)
    return await kind.function(task, ctx)


@dataclass
class ThreadRun:
    """One handler thread; `lock` orders its end against the attempt giving up on it."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: bool = False
    abandoned: bool = False


def settle(future: asyncio.Future, outcome: tuple[bool, Any]) -> None:
    if not future.done():  # (cancelled meanwhile: the outcome is discarded)
        ok, value = outcome
        future.set_result(value) if ok else future.set_exception(value)


def start_thread(function: Callable[[], Any], name: str, run_state: ThreadRun | None = None) -> asyncio.Future:
    """A future for `function()` run in a new daemon thread, in a copy of the caller's context
    (its log context included)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome = (True, context.run(function))
        except BaseException as exc:  # handed to the awaiting task, whatever it is
            outcome = (False, exc)
        if run_state is not None:
            with run_state.lock:
                run_state.finished = True
            if run_state.abandoned:
                metrics.ABANDONED_THREADS.dec()
                log.info("abandoned handler thread %r ended; its outcome was discarded", name)
                return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for it any more
            loop.call_soon_threadsafe(settle, future, outcome)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


async def in_thread(function: Callable, task: Mapping[str, Any], ctx: HandlerContext) -> Any:
    run_state = ThreadRun()
    future = start_thread(functools.partial(function, task, ctx), f"handler {ctx.task_id}/{ctx.attempt}",
                          run_state)
    try:
        return await future
    except asyncio.CancelledError:
        if ctx.stopping is not None:
            ctx.stopping.set()
        with run_state.lock:
            if not run_state.finished:
                run_state.abandoned = True
                metrics.ABANDONED_THREADS.inc()
        raise


@functools.cache
def process_context() -> multiprocessing.context.BaseContext:
    """The start method of handler processes, chosen once (the fork server is one per process)."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def preload(kinds: Iterable[Kind]) -> None:
    """Have the fork server import the process handlers' modules once, not every child."""
    modules = sorted({kind.function.__module__ for kind in kinds if kind.executor == "process"})
    if modules and process_context().get_start_method() == "forkserver":
        process_context().set_forkserver_preload([__name__, *modules])


async def in_process(function: Callable, task: Mapping[str, Any], ctx: HandlerContext) -> Any:
    context = process_context()
    receiver, sender = context.Pipe(duplex=False)
    # The child's context travels pickled: its progress reports come back through the pipe.
    child_ctx = replace(ctx, stopping=None, report_progress=None)
    process = context.Process(target=run_in_child, args=(function, dict(task), child_ctx, sender,
                                                         *child_logging()),
                              name=f"handler {ctx.task_id}/{ctx.attempt}", daemon=True)
    stop = threading.Event()
    # Started, watched and ended from a thread: starting can wait for the fork server.
    future = start_thread(functools.partial(supervise, process, receiver, sender, stop, ctx.report_progress),
                          f"handler process {ctx.task_id}/{ctx.attempt}")
    try:
        return await future
    except asyncio.CancelledError:
        stop.set()  # the supervising thread ends the process
        raise


class ProcessStopped(Exception):
    """The attempt stopped waiting for its process (timed out or cancelled): it was ended."""


# The tag of a progress report sent through the pipe, ahead of the (ok, value) outcome.
PROGRESS = "progress"


def supervise(process: multiprocessing.process.BaseProcess, receiver: Connection, sender: Connection,
              stop: threading.Event, report_progress: Callable[[float, str | None], None] | None) -> Any:
    """Start the child, pass on its progress reports, wait for its result or its exception
    (raised here), or for `stop`: then end it. Every path leaves the child ended and joined."""
    try:
        try:
            process.start()
        finally:
            sender.close()  # the child holds the sending end now: its exit, however it comes, wakes poll
        log.debug("handler process %d started", process.pid)
        while True:
            while not receiver.poll(STOP_CHECK_SECONDS):
                if stop.is_set():
                    end_process(process)
                    raise ProcessStopped(f"handler process {process.pid} ended")
            try:
                message = receiver.recv()
            except EOFError:
                process.join()
                raise RuntimeError(f"handler process exited with code {process.exitcode} "
                                   "before returning") from None
            if message[0] != PROGRESS:
                break
            if report_progress is not None:
                report_progress(*message[1])
        ok, value = message
        process.join()
    finally:
        receiver.close()
    if not ok:
        raise value
    return value


def child_logging() -> tuple[str, str]:
    """The worker's log level and format, for its children to log as it does."""
    root = logging.getLogger()
    level = logging.getLevelName(root.getEffectiveLevel()).lower()
    json_lines = any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    return level, "json" if json_lines else "text"


def end_process(process: multiprocessing.process.BaseProcess) -> None:
    process.terminate()
    process.join(PROCESS_KILL_GRACE_SECONDS)
    if process.exitcode is None:
        log.warning("handler process %d ignored SIGTERM for %.0fs; killing it", process.pid,
                    PROCESS_KILL_GRACE_SECONDS)
        process.kill()
        process.join()


def send_progress(sender: Connection, lock: threading.Lock, fraction: float, message: str | None) -> None:
    """In the child: a progress report to the worker (the handler may report from threads of its own)."""
    with lock:
        sender.send((PROGRESS, (fraction, message)))


def run_in_child(function: Callable, task: dict, ctx: HandlerContext, sender: Connection, log_level: str,
                 log_format: str) -> None:
    """The child process: run the handler (an async one on an event loop of its own), send back
    its result or its exception (as a RuntimeError naming it when it does not pickle)."""
    configure_logging(log_level, log_format)
    sending = threading.Lock()  # the handler's own threads may report progress while it returns
    ctx = replace(ctx, report_progress=functools.partial(send_progress, sender, sending))
    try:
        with log_context(task_id=str(ctx.task_id), attempt=ctx.attempt):
            result = function(task, ctx)
            if inspect.isawaitable(result):
                result = asyncio.run(result)
        message = (True, result)
    except BaseException as exc:  # whatever it is, the worker records it
        exc.add_note("Traceback in the handler's process:\n" + "".join(traceback.format_exception(exc)))
        message = (False, exc)
    with sending:
        try:
            sender.send(message)
        except Exception as exc:
            what = "result" if message[0] else f"exception ({type(message[1]).__name__}: {message[1]})"
            sender.send((False, RuntimeError(f"the handler's {what} could not be sent back: "
                                             f"{type(exc).__name__}: {exc}")))
        finally:
            sender.close()
