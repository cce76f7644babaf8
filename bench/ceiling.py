"""Same-run PostgreSQL ceilings, measured with pgbench running the service's own SQL files
(read at run time, so the ceilings follow the SQL as it changes):

- create: the API's create statement (sql/tasks/create.sql) over the same number of
  connections as the create scenario, so the API's req/s reads as a share of what the
  database alone sustains on this machine;
- batch insert: the batch create's statement (sql/tasks/create_many.sql) with the batch
  scenario's batch size and body, over as many connections as its clients, so the batch
  scenario's tasks/s reads beside the tasks/s the database alone inserts that way;
- task lifecycle: one task's whole database life as the service runs it: create; the
  dispatcher's claim_due.sql (restricted to this client's own outbox row) and
  mark_published.sql; the worker's claim.sql and complete.sql, each on a batch of one. The
  drain's tasks/s reads as a share of it. The real dispatcher claims up to DISPATCH_BATCH_SIZE
  rows at a time and the worker claims and completes what arrives or finishes together, where
  this handles one task per statement, so it is the ceiling of the per-task path, not an
  upper bound proof: a busy service batches past it.
"""

import asyncio
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.load import percentile
from bench.server import ROOT

SQL_DIR = ROOT / "sql"
CREATE_SQL = SQL_DIR / "tasks" / "create.sql"

# The values the API sends for a create like the benchmark's: every $n of create.sql.
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
    11: "NULL",  # callback_url
    12: "'default'",  # queue
    13: "0",  # waiting_on: no parents
}


def statement(path: Path) -> str:
    """An SQL file's statement without its comment lines or the final semicolon."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
    return text.strip().removesuffix(";").strip()


def fill(sql: str, parameters: dict[int, str], name: str) -> str:
    """`sql` with each $n replaced by parameters[n]: SQL text or a pgbench :variable."""
    def value(found: re.Match) -> str:
        if int(found.group(1)) not in parameters:
            raise RuntimeError(f"bench/ceiling.py has no value for ${found.group(1)} of {name}: "
                               "the SQL file changed; update the bench's parameters")
        return parameters[int(found.group(1))]

    return re.sub(r"\$(\d+)\b", value, sql)


def script() -> str:
    """create.sql with its parameters filled in, as a pgbench script."""
    create = fill(statement(CREATE_SQL), PARAMETERS, "tasks/create.sql")
    return ("\\set n random(1, 1000000000)\n"
            "\\set p random(1, 3)\n"
            f"{create}\n")


def batch_parameters(size: int) -> dict[int, str]:
    """Every $n of create_many.sql for a batch of `size` tasks like the batch scenario's
    ({"name": "batch N", "kind": "noop", "priority": ...}, the rest defaults)."""
    def repeated(value: str) -> str:
        return f"array_fill({value}, ARRAY[{size}])"

    return {
        1: f"ARRAY(SELECT 'batch ' || :n::text || ' ' || g FROM generate_series(1, {size}) g)",  # names
        2: repeated("NULL::text"),  # descriptions
        3: f"ARRAY(SELECT (ARRAY['LOW', 'MEDIUM', 'HIGH'])[1 + g % 3] FROM generate_series(1, {size}) g)",
        4: repeated("'noop'::text"),  # kinds
        5: repeated("'{}'::text"),  # payloads
        6: repeated("3"),  # max_attempts
        7: repeated("300"),  # timeout_seconds (DEFAULT_TIMEOUT_SECONDS)
        8: repeated("NULL::timestamptz"),  # run_at
        9: repeated("NULL::text"),  # idempotency keys
        10: repeated("NULL::text"),  # request hashes
        11: repeated("NULL::text"),  # callback URLs
        12: repeated("'default'::text"),  # queues
        13: repeated("0"),  # waiting_on: no parents
        14: "NULL",  # lease: none (the batch endpoint leaves its rows to the claim)
    }


def batch_script(size: int) -> str:
    """create_many.sql for one batch of `size` tasks, as a pgbench script (tps x size = tasks/s)."""
    create_many = fill(statement(SQL_DIR / "tasks" / "create_many.sql"), batch_parameters(size),
                       "tasks/create_many.sql")
    return f"\\set n random(1, 1000000000)\n{create_many}\n"


# The task lifecycle: what the drain's tasks go through. The API's create with the drain's
# body ({"name": "drain N", "kind": "noop", "priority": ...}, the rest defaults)...
LIFECYCLE_CREATE = {
    1: "'lifecycle ' || :n::text",  # name
    2: "NULL",  # description
    3: "(ARRAY['LOW', 'MEDIUM', 'HIGH'])[:p]",  # priority
    4: "'noop'",  # kind
    5: "'{}'",  # payload
    6: "3",  # max_attempts
    7: "300",  # timeout_seconds (DEFAULT_TIMEOUT_SECONDS)
    8: "NULL",  # run_at
    9: "NULL",  # idempotency_key
    10: "NULL",  # request_hash
    11: "NULL",  # callback_url
    12: "'default'",  # queue
    13: "0",  # waiting_on: no parents
}
LIFECYCLE_WORKER_ID = "'bench-lifecycle'"
# ...the dispatcher's claim (batch size: this client's own row, hence 1; PUBLISH_LEASE_SECONDS)
# and mark...
LIFECYCLE_CLAIM_DUE = {1: "1", 2: "30"}
LIFECYCLE_MARK_PUBLISHED = {1: "ARRAY[:due_id]::bigint[]"}
# ...and the worker's claim (tasks, the messages' outbox ids, worker, LEASE_SECONDS, no limited kinds,
# waiting for the WAL flush as a busy worker's does) and
# complete (tasks, the attempts the claim returned, the noop handler's results: None, worker),
# each a batch of this one task (the worker batches what arrives or finishes together).
LIFECYCLE_CLAIM = {1: "ARRAY[:task_id]", 2: "ARRAY[:due_id]", 3: LIFECYCLE_WORKER_ID, 4: "30", 5: "'{}'", 6: "false"}
LIFECYCLE_COMPLETE = {1: "ARRAY[:task_id]", 2: "ARRAY[:claimed_attempts]", 3: "ARRAY[NULL]",
                      4: LIFECYCLE_WORKER_ID, 5: "NULL"}


def split_ctes(sql: str, name: str) -> tuple[list[tuple[str, str]], str]:
    """`WITH a AS (...), b AS (...) <main>` as ([(a, body), (b, body)], main)."""
    start = re.match(r"\s*WITH\s+", sql, re.IGNORECASE)
    if start is None:
        raise RuntimeError(f"{name} no longer starts with WITH: update bench/ceiling.py")
    ctes, position = [], start.end()
    while True:
        head = re.compile(r"(\w+)\s+AS\s*\(", re.IGNORECASE).match(sql, position)
        if head is None:
            raise RuntimeError(f"{name}: unexpected text at {sql[position:position + 40]!r}: "
                               "update bench/ceiling.py")
        depth, end = 1, head.end()
        while depth:
            if end >= len(sql):
                raise RuntimeError(f"{name}: unbalanced parentheses")
            depth += {"(": 1, ")": -1}.get(sql[end], 0)
            end += 1
        ctes.append((head.group(1), sql[head.end():end - 1]))
        comma = re.compile(r"\s*,\s*").match(sql, end)
        if comma is None:
            return ctes, sql[end:].strip()
        position = comma.end()


def join_ctes(ctes: list[tuple[str, str]], main: str) -> str:
    return "WITH " + ",\n".join(f"{cte} AS ({body})" for cte, body in ctes) + f"\n{main}"


def cte_inserting(ctes: list[tuple[str, str]], table: str, name: str) -> int:
    """Index of the CTE that inserts into `table`."""
    found = [i for i, (_, body) in enumerate(ctes)
             if re.match(rf"\s*INSERT\s+INTO\s+{table}\b", body, re.IGNORECASE)]
    if len(found) != 1:
        raise RuntimeError(f"{name}: expected one CTE inserting into {table}, found {len(found)}: "
                           "update bench/ceiling.py")
    return found[0]


def create_returning_outbox_id(sql: str) -> str:
    """create.sql, unchanged but for also returning the id of the outbox row it wrote, as
    `outbox_id` beside the task row it returns (the dispatcher's step needs it)."""
    ctes, main = split_ctes(sql, "tasks/create.sql")
    index = cte_inserting(ctes, "outbox", "tasks/create.sql")
    outbox, body = ctes[index]
    returning = re.search(r"\bRETURNING\b(?P<columns>.*)$", body, re.IGNORECASE | re.DOTALL)
    if returning is None:
        body = f"{body.rstrip()}\n    RETURNING id\n"
    elif not re.search(r"\*|\bid\b", returning.group("columns")):
        body = f"{body.rstrip()}, id\n"
    ctes[index] = (outbox, body)
    return join_ctes(ctes, f"SELECT created.*, {outbox}.id AS outbox_id\nFROM ({main}) AS created, {outbox}")


def claim_own_row(sql: str, outbox_id: str) -> str:
    """claim_due.sql with its outbox scan restricted to this client's own row (`outbox_id`,
    a pgbench variable), so every client claims exactly the row it created."""
    ctes, main = split_ctes(sql, "outbox/claim_due.sql")
    scans = [i for i, (_, body) in enumerate(ctes)
             if re.search(r"\bFROM\s+outbox\b", body, re.IGNORECASE)
             and re.search(r"\bFOR\s+UPDATE\b", body, re.IGNORECASE)]
    if len(scans) != 1:
        raise RuntimeError("outbox/claim_due.sql: expected one CTE locking outbox rows: "
                           "update bench/ceiling.py")
    cte, body = ctes[scans[0]]
    body, replaced = re.subn(r"\bWHERE\b", f"WHERE id = {outbox_id} AND", body, count=1,
                             flags=re.IGNORECASE)
    if not replaced:
        raise RuntimeError("outbox/claim_due.sql: its outbox scan has no WHERE: update bench/ceiling.py")
    ctes[scans[0]] = (cte, body)
    return join_ctes(ctes, main)


def lifecycle_script() -> str:
    """One task's database lifecycle, as pgbench runs it: each \\gset insists on exactly one
    row, so a step that finds nothing (a claim that misses) aborts the run instead of
    counting as done."""
    create = fill(create_returning_outbox_id(statement(CREATE_SQL)), LIFECYCLE_CREATE, "tasks/create.sql")
    claim_due = fill(claim_own_row(statement(SQL_DIR / "outbox" / "claim_due.sql"), ":task_outbox_id"),
                     LIFECYCLE_CLAIM_DUE, "outbox/claim_due.sql")
    mark = fill(statement(SQL_DIR / "outbox" / "mark_published.sql"), LIFECYCLE_MARK_PUBLISHED,
                "outbox/mark_published.sql")
    claim = fill(statement(SQL_DIR / "tasks" / "claim.sql"), LIFECYCLE_CLAIM, "tasks/claim.sql")
    complete = fill(statement(SQL_DIR / "tasks" / "complete.sql"), LIFECYCLE_COMPLETE,
                    "tasks/complete.sql")
    # \\gset task_ names the created row's columns task_id, task_outbox_id...
    return ("\\set n random(1, 1000000000)\n"
            "\\set p random(1, 3)\n"
            "-- the API: create (tasks/create.sql, also returning the outbox row's id)\n"
            f"{create} \\gset task_\n"
            "-- the dispatcher: lease the due row (its task PENDING), publish (not here), mark\n"
            f"{claim_due} \\gset due_\n"
            f"{mark};\n"
            "-- the worker: claim the task from the message, run noop, record COMPLETED\n"
            f"{claim} \\gset claimed_\n"
            f"{complete} \\gset completed_\n")


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
                      processes: dict[str, int], text: str | None = None) -> dict[str, Any]:
    """Run a pgbench script (by default the create transaction); `processes` gets pgbench's
    pid while it runs, so its CPU use can be measured."""
    binary = shutil.which("pgbench") or "/usr/bin/pgbench"
    text = script() if text is None else text
    with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as tmp:
        tmpdir = Path(tmp)
        script_path = tmpdir / "script.sql"
        script_path.write_text(text)
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
        report = output.decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{report}")
        latencies = read_latencies(logs)
    summary = parse_summary(report)
    return {
        **summary,
        "clients": clients,
        "threads": threads,
        "seconds": seconds,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "script": text,
    }
