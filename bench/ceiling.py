"""The PostgreSQL ceiling for creates: pgbench running the API's own create statement
(sql/tasks/create.sql) over the same number of connections, in the same run, so the API's
req/s reads as a share of what the database alone sustains on this machine."""

import asyncio
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.load import percentile
from bench.server import ROOT

CREATE_SQL = ROOT / "sql" / "tasks" / "create.sql"

# The values the API sends for a create like the benchmark's: $1 .. $10 of create.sql.
# pgbench's \set makes numbers only, so the varying parts are built around them;
# -M prepared turns each :variable into a bound parameter.
PARAMETERS = {
    1: "'bench task ' || :n::text",  # name
    2: "'Created by the benchmark to measure create throughput.'",  # description
    3: "(ARRAY['LOW', 'MEDIUM', 'HIGH'])[:p]",  # priority
    4: "'noop'",  # kind
    5: "'{}'",  # payload
    6: "3",  # max_attempts
    7: "300",  # timeout_seconds
    8: "NULL",  # run_at
    9: "NULL",  # idempotency_key
    10: "NULL",  # request_hash
}


def script() -> str:
    """create.sql with its parameters filled in, as a pgbench script."""
    statement = "\n".join(line for line in CREATE_SQL.read_text().splitlines()
                          if not line.lstrip().startswith("--"))
    statement = re.sub(r"\$(\d+)\b", lambda m: PARAMETERS[int(m.group(1))], statement)
    return ("\\set n random(1, 1000000000)\n"
            "\\set p random(1, 3)\n"
            f"{statement.strip()}\n")


def parse_summary(output: str) -> dict[str, Any]:
    def number(pattern: str) -> float | None:
        found = re.search(pattern, output)
        return float(found.group(1)) if found else None

    return {
        "tps": number(r"tps = ([\d.]+) \(without initial connection time\)"),
        "latency_avg_ms": number(r"latency average = ([\d.]+) ms"),
        "transactions": number(r"number of transactions actually processed: (\d+)"),
        "failed": number(r"number of failed transactions: (\d+)") or 0,
    }


def read_latencies(log_dir: Path) -> list[float]:
    """Per-transaction latencies in seconds from pgbench's -l logs (third column, µs)."""
    latencies = []
    for path in log_dir.glob("pgbench_log*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3:
                latencies.append(int(fields[2]) / 1_000_000)
    latencies.sort()
    return latencies


async def run_pgbench(url: str, *, clients: int, threads: int, seconds: int,
                      processes: dict[str, int]) -> dict[str, Any]:
    """Run the create transaction under pgbench; `processes` gets pgbench's pid while it
    runs, so its CPU use can be measured."""
    binary = shutil.which("pgbench") or "/usr/bin/pgbench"
    with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as tmp:
        tmpdir = Path(tmp)
        script_path = tmpdir / "create.sql"
        script_path.write_text(script())
        logs = tmpdir / "logs"
        logs.mkdir()
        proc = await asyncio.create_subprocess_exec(
            binary, "--no-vacuum", "--file", str(script_path), "--client", str(clients),
            "--jobs", str(threads), "--time", str(seconds), "--protocol", "prepared",
            "--log", f"--log-prefix={logs / 'pgbench_log'}", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        processes["pgbench"] = proc.pid
        try:
            output, _ = await proc.communicate()
        finally:
            processes.pop("pgbench", None)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        text = output.decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{text}")
        latencies = read_latencies(logs)
    summary = parse_summary(text)
    return {
        **summary,
        "clients": clients,
        "threads": threads,
        "seconds": seconds,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "script": script(),
    }
