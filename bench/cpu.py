"""Who used the CPU during a measurement: the API server, this process (the load
generator), pgbench, the PostgreSQL processes serving the bench database, and the whole
machine. Read from /proc (Linux); elsewhere the figures are simply missing.

Figures are percent of one core, so on a 2-core machine the machine total tops out at 200.
"""

import asyncio
import os
import re
import time
from collections import Counter
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")
# A backend's title: "postgres: [<cluster>: ]<user> <database> <host(port)|[local]> <state>";
# background processes (checkpointer, walwriter...) have no client.
BACKEND_TITLE = re.compile(r"postgres: (?:\S+: )?\S+ (?P<database>\S+) (?:\S+\(\d+\)|\[local\]) ")


def _process_ticks(pid: int) -> int:
    """user + system clock ticks of one process (0 once it is gone)."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def _postgres_ticks(database: str, owners: Mapping[int, str] | None = None) -> tuple[int, int, Counter]:
    """Ticks of PostgreSQL processes working for `database` (backends named after it, plus
    the shared background processes: WAL writer, checkpointer...), of backends of other
    databases (someone else's load on the same server), and, with `owners` (backend pid →
    client name), of ours per client ("background" for the shared processes)."""
    ours = others = 0
    groups: Counter = Counter()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        backend = BACKEND_TITLE.match(title)
        if backend is None or backend["database"] == database:
            ticks = _process_ticks(int(entry.name))
            ours += ticks
            if owners is not None:
                groups["background" if backend is None else owners.get(int(entry.name), "unknown")] += ticks
        else:
            others += _process_ticks(int(entry.name))
    return ours, others, groups


def client_ports(pid: int) -> set[int]:
    """Local TCP ports of process `pid`'s sockets: its end of each database connection, to
    match with pg_stat_activity.client_port."""
    inodes = set()
    try:
        for fd in (PROC / str(pid) / "fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / str(pid) / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def find_process(comm: str) -> int | None:
    """The pid of a process named `comm` (e.g. RabbitMQ's "beam.smp"), if one runs here."""
    if not PROC.is_dir():
        return None
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == comm:
                    return int(entry.name)
            except OSError:
                continue
    return None


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks over all cores, from the first line of /proc/stat."""
    values = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user time
    return total - idle, total


def child_pids(pid: int) -> list[int]:
    """The children of process `pid` (e.g. the API processes of `api --processes N`)."""
    try:
        return [int(child) for child in (PROC / str(pid) / "task" / str(pid) / "children").read_text().split()]
    except OSError:
        return []


def _ticks(pids: int | tuple[int, ...]) -> int:
    return sum(_process_ticks(pid) for pid in (pids if isinstance(pids, tuple) else (pids,)))


def snapshot(processes: Mapping[str, int | tuple[int, ...]], database: str,
             backend_owners: Mapping[int, str] | None = None) -> dict[str, float] | None:
    """CPU seconds so far of each named process or group of processes (e.g. {"server": pid}),
    this process ("loadgen"), PostgreSQL and the machine; with `backend_owners` (backend pid →
    client name), PostgreSQL's also per client as "postgres.<client>"."""
    if not PROC.is_dir():
        return None
    own = os.times()
    ours, others, groups = _postgres_ticks(database, backend_owners)
    busy, total = _machine_ticks()
    return {
        **{f"postgres.{owner}": ticks / TICKS for owner, ticks in groups.items()},
        **{name: _ticks(pids) / TICKS for name, pids in processes.items()},
        "loadgen": own.user + own.system,
        "postgres": ours / TICKS,
        "other_postgres": others / TICKS,
        "machine_busy": busy / TICKS,
        "machine_total": total / TICKS,
        "wall": time.monotonic(),
    }


def usage(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, Any] | None:
    """Percent of one core each part used between two snapshots."""
    if before is None or after is None:
        return None
    wall = after["wall"] - before["wall"]
    if wall <= 0:
        return None
    parts = [key for key in after
             if key in before and not key.startswith("machine_") and key != "wall"]
    share = {key: round((after[key] - before[key]) / wall * 100, 1) for key in parts}
    total = after["machine_total"] - before["machine_total"]
    cores = os.cpu_count() or 1
    busy = (after["machine_busy"] - before["machine_busy"]) / total if total else 0.0
    share["machine"] = round(busy * cores * 100, 1)
    share["machine_capacity"] = cores * 100
    # Whatever else ran meanwhile (other databases' backends, other programs): a run with a
    # large share here was measured on a busy machine and reads low.
    # (postgres.<client> keys split "postgres" further: not added twice)
    ours = sum(value for key, value in share.items()
               if key in parts and key != "other_postgres" and "." not in key)
    share["others"] = round(max(0.0, share["machine"] - ours), 1)
    return share


async def measure_during(work: Awaitable[T], seconds: float, processes: Mapping[str, int | tuple[int, ...]],
                         database: str) -> tuple[T, dict[str, Any] | None]:
    """Run `work` (expected to last about `seconds`) and sample CPU use over its middle 80%,
    so start-up and the last requests (or backends that exit with pgbench) do not blur it."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=seconds * 0.1)
        before = snapshot(processes, database)
        await asyncio.wait({task}, timeout=seconds * 0.8)
        after = snapshot(processes, database) if not task.done() else None
        return await task, usage(before, after)
    finally:
        if not task.done():
            task.cancel()
