"""Optional sampling profiles of the API and the worker during each drain, with py-spy.

py-spy is not a project dependency: install it anywhere (e.g. a scratch venv) and pass
`--py-spy PATH`. Its raw (collapsed stack) output lands in bench/results/profile-*.txt, and a
summary (share of samples per package and per function, self and inclusive) in the results.
py-spy skips idle threads, so the samples are where the CPU went. It samples without pausing the
process (--nonblocking), but it needs CPU of its own: a profiled run's rates read low.
"""

import asyncio
import re
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<function>.*) \((?P<path>.*?)(?::\d+)?\)$")
TOP = 15


@dataclass
class Recording:
    name: str
    proc: asyncio.subprocess.Process
    output: Path


async def start(py_spy: str | None, processes: dict[str, int], results_dir: Path,
                suffix: str) -> list[Recording]:
    """Start recording the API ("server") and the worker; nothing without `py_spy`."""
    if not py_spy:
        return []
    recordings = []
    for name in ("server", "worker"):
        output = results_dir / f"profile-{name}-{suffix}.txt"
        with output.with_suffix(".log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                py_spy, "record", "--pid", str(processes[name]), "--rate", "200", "--format", "raw",
                "--nonblocking", "--output", str(output),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        recordings.append(Recording(name, proc, output))
    await asyncio.sleep(0.5)  # attached before the measurement starts
    return recordings


async def stop(recordings: list[Recording]) -> dict[str, Any]:
    """Stop every recording (py-spy writes its file on SIGINT) and summarize it. Safe to call
    twice: the second call finds nothing left to stop."""
    summaries = {}
    while recordings:
        recording = recordings.pop()
        if recording.proc.returncode is None:
            recording.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(recording.proc.wait(), 20)
        except TimeoutError:
            recording.proc.kill()
            await recording.proc.wait()
        if recording.output.exists():
            summaries[recording.name] = summarize(recording.output.read_text())
    return summaries


def package(path: str) -> str:
    """Where a frame's code lives: a site-packages distribution, the project, or the stdlib."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "taskservice/" in path or path.startswith("taskservice"):
        return "taskservice"
    if "/lib/python3" in path:
        module = path.split("/lib/python3", 1)[1].split("/", 2)[1]
        return f"stdlib:{module.removesuffix('.py')}"
    return path or "?"


def summarize(raw: str) -> dict[str, Any]:
    """Shares of samples: self time per package and per function, inclusive per function."""
    total = 0
    by_package: Counter = Counter()
    self_time: Counter = Counter()
    inclusive: Counter = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = []
        for frame in stack.split(";"):
            found = FRAME.match(frame)
            function, path = (found["function"], found["path"]) if found else (frame, "")
            short = path.rsplit("site-packages/", 1)[-1].rsplit("/lib/", 1)[-1]
            frames.append((f"{function} ({short})", path))
        leaf, leaf_path = frames[-1]
        self_time[leaf] += samples
        by_package[package(leaf_path)] += samples
        for key in {key for key, _ in frames}:
            inclusive[key] += samples

    def shares(counter: Counter) -> dict[str, float]:
        return {key: round(n / total, 3) for key, n in counter.most_common(TOP)} if total else {}

    return {"samples": total, "self_by_package": shares(by_package), "self": shares(self_time),
            "inclusive": shares(inclusive)}


def format_top(summary: dict[str, Any], n: int = 6) -> str:
    packages = ", ".join(f"{name} {share:.0%}" for name, share in list(summary["self_by_package"].items())[:n])
    return f"{summary['samples']} samples; self by package: {packages}"
