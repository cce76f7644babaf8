"""The processes under test: `python -m taskservice api` as a child process on a free port,
and `python -m taskservice worker` beside it for the end-to-end scenarios."""

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Server:
    base_url: str
    database_url: str
    pid: int
    log_path: Path
    # Every process doing the API's work: the children of `api --processes N` (whose parent
    # only supervises), else the one process.
    pids: tuple[int, ...] = ()

    @property
    def cpu_processes(self) -> int | tuple[int, ...]:
        return self.pids or self.pid


@dataclass(frozen=True)
class Worker:
    pid: int
    concurrency: int
    log_path: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def wait_until_ready(proc: asyncio.subprocess.Process, base_url: str, log_path: Path,
                           timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the API exited with {proc.returncode} before it was ready:\n"
                                   f"{log_tail(log_path)}")
            try:
                async with session.get(f"{base_url}/ready") as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the API was not ready after {timeout:.0f} s:\n{log_tail(log_path)}")
            await asyncio.sleep(0.2)


async def stop(proc: asyncio.subprocess.Process, timeout: float = 15) -> None:
    """SIGTERM, as a deployment would stop it; SIGKILL if it does not exit in time."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def spawn(command: list[str], env: Mapping[str, str], log_path: Path,
                root: Path = ROOT) -> asyncio.subprocess.Process:
    """`python -m taskservice <command>`, the package of the checkout at `root` (this one by
    default), with its output in `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "taskservice", *command, cwd=root, env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)


def listening_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on TCP `port` (Linux /proc)."""
    listeners = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for fields in (line.split() for line in lines):
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                listeners.add(f"socket:[{fields[9]}]")
    try:
        return any(os.readlink(fd) in listeners for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


async def wait_for_children(proc: asyncio.subprocess.Process, port: int, count: int, log_path: Path,
                            timeout: float = 30) -> tuple[int, ...]:
    """The pids of the `count` API processes of `api --processes N`, once each listens."""
    from bench.cpu import child_pids

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        children = tuple(child_pids(proc.pid))
        if len(children) == count and all(listening_on(pid, port) for pid in children):
            return children
        if proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"the API's {count} processes were not all listening:\n{log_tail(log_path)}")
        await asyncio.sleep(0.2)


@asynccontextmanager
async def running_api(database_url: str, *, pool_max: int, log_path: Path,
                      env: Mapping[str, str] | None = None, processes: int = 1,
                      root: Path = ROOT) -> AsyncIterator[Server]:
    """The API serving `database_url`, by default without the embedded dispatcher (the bench
    measures the HTTP path alone; `env` may turn it on, with its own AMQP names), in
    `processes` processes (each with a pool of `pool_max`), stopped with SIGTERM on the way
    out, whatever happened."""
    port = free_port()
    proc = await spawn(["api", "--processes", str(processes)], {
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DISPATCHER_EMBEDDED": "false",
        "LOG_LEVEL": "warning",
        "DB_POOL_MIN": str(pool_max),
        "DB_POOL_MAX": str(pool_max),
        **(env or {}),
    }, log_path, root)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_ready(proc, base_url, log_path)
        pids = await wait_for_children(proc, port, processes, log_path) if processes > 1 else ()
        yield Server(base_url=base_url, database_url=database_url, pid=proc.pid, log_path=log_path, pids=pids)
    finally:
        # Shielded: a Ctrl-C while the bench unwinds must still not leave the server running.
        await asyncio.shield(stop(proc))


@asynccontextmanager
async def running_worker(database_url: str, *, concurrency: int, pool_max: int, log_path: Path,
                         env: Mapping[str, str], ready: Callable[[], Awaitable[bool]],
                         timeout: float = 30, root: Path = ROOT) -> AsyncIterator[Worker]:
    """`python -m taskservice worker --concurrency N`, waited for until `ready()` (its consumer
    is on the queue), stopped with SIGTERM on the way out."""
    proc = await spawn(["worker", "--concurrency", str(concurrency)], {
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "warning",
        "DB_POOL_MIN": str(pool_max),
        "DB_POOL_MAX": str(pool_max),
        **env,
    }, log_path, root)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await ready():
            if proc.returncode is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode} before it was ready:\n"
                                   f"{log_tail(log_path)}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the worker was not consuming after {timeout:.0f} s:\n"
                                   f"{log_tail(log_path)}")
            await asyncio.sleep(0.2)
        yield Worker(pid=proc.pid, concurrency=concurrency, log_path=log_path)
    finally:
        await asyncio.shield(stop(proc))
