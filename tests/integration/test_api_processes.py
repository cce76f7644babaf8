"""`taskservice api --processes N`: N real API processes on one port under a supervising parent."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from taskservice.api.processes import STARTUP_SECONDS
from tests.support.processes import free_port, process_logging_to, wait_for_line
from tests.support.services import ROOT

DEADLINE = 30  # generous: the machine may be busy


def start_api(args: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    with log_path.open("w") as log:
        return subprocess.Popen([sys.executable, "-m", "taskservice", "api", *args],
                                env={**os.environ, "LOG_LEVEL": "info", "LOG_FORMAT": "json",
                                     "PYTHONPATH": str(ROOT), **env},
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def log_lines(log_path: Path) -> list[dict]:
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]


def wait_until(condition, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in:\n{log_path.read_text()}"
        time.sleep(0.1)


def children_listening(log_path: Path, count: int) -> set[int]:
    """The pids of the children once `count` of them log that they listen."""
    def listening() -> set[int]:
        return {line["pid"] for line in log_lines(log_path) if line["message"].startswith("api listening")}
    wait_until(lambda: len(listening()) >= count, f"{count} listening processes", log_path)
    return listening()


def request(method: str, url: str, body: dict | None = None) -> dict:
    """One request on its own connection (urllib never reuses one), so the kernel picks a process."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@pytest.fixture
def env(settings) -> dict:
    return {"DATABASE_URL": settings.database_url, "AMQP_URL": settings.amqp_url,
            "AMQP_EXCHANGE": settings.amqp_exchange, "AMQP_QUEUE": settings.amqp_queue,
            "DISPATCH_POLL_SECONDS": "0.2", "HOST": "127.0.0.1", "PORT": str(free_port())}


def test_two_processes_serve_the_port_run_tasks_and_stop_on_sigterm(env, tmp_path):
    log_path = tmp_path / "api.log"
    api = start_api(["--processes", "2"], env, log_path)
    try:
        children = children_listening(log_path, 2)
        assert len(children) == 2 and api.pid not in children
        base = f"http://127.0.0.1:{env['PORT']}/api/v1/tasks/"
        ids = [request("POST", base, {"name": f"spread {n}"})["id"] for n in range(30)]
        # Each POST came on a new connection: the kernel spread them over both processes.
        served_by = {line["pid"] for line in log_lines(log_path)
                     if line.get("method") == "POST" and line.get("status") == 201}
        assert served_by == children
        # Each process drains the outbox with its own embedded dispatcher.
        wait_until(lambda: {line["pid"] for line in log_lines(log_path)
                            if line["message"].startswith("dispatcher publishing")} == children,
                   "a dispatcher in each process", log_path)
        with process_logging_to("worker", env, tmp_path / "worker.log") as worker:
            wait_for_line(worker, tmp_path / "worker.log", "consuming")
            wait_until(lambda: all(request("GET", base + task_id)["status"] == "COMPLETED" for task_id in ids),
                       "COMPLETED for every task", log_path)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(DEADLINE) == 0
        api.send_signal(signal.SIGTERM)
        assert api.wait(DEADLINE) == 0, log_path.read_text()
        assert not any(alive(pid) for pid in children)
        assert "Traceback" not in log_path.read_text()
    finally:
        if api.poll() is None:
            api.kill()


def test_the_setting_gives_the_default_and_sigint_stops_all(env, tmp_path):
    log_path = tmp_path / "api.log"
    api = start_api([], {**env, "API_PROCESSES": "3", "DISPATCHER_EMBEDDED": "false"}, log_path)
    try:
        children = children_listening(log_path, 3)
        assert len(children) == 3
        api.send_signal(signal.SIGINT)
        assert api.wait(DEADLINE) == 0, log_path.read_text()
        assert not any(alive(pid) for pid in children)
    finally:
        if api.poll() is None:
            api.kill()


def test_a_process_that_dies_after_starting_is_replaced(env, tmp_path):
    log_path = tmp_path / "api.log"
    api = start_api(["--processes", "2"], {**env, "DISPATCHER_EMBEDDED": "false"}, log_path)
    try:
        children = children_listening(log_path, 2)
        time.sleep(STARTUP_SECONDS + 0.5)  # past start-up, a death is a crash rather than a failure to start
        victim = min(children)
        os.kill(victim, signal.SIGKILL)
        (replacement,) = children_listening(log_path, 3) - children
        expected = rf"pid {victim}\) was killed by signal 9 unexpectedly; replaced by pid {replacement}"
        assert any(re.search(expected, line["message"]) for line in log_lines(log_path))
        api.send_signal(signal.SIGTERM)
        assert api.wait(DEADLINE) == 0, log_path.read_text()
    finally:
        if api.poll() is None:
            api.kill()


def test_processes_that_cannot_start_stop_the_others_and_exit_1(env, tmp_path):
    # A listener without SO_REUSEPORT holds the port: no child can bind it.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["PORT"])))
        holder.listen()
        log_path = tmp_path / "api.log"
        api = start_api(["--processes", "2"], {**env, "DISPATCHER_EMBEDDED": "false"}, log_path)
        try:
            assert api.wait(DEADLINE) == 1, log_path.read_text()
        finally:
            if api.poll() is None:
                api.kill()
    assert "stopping the others" in log_path.read_text()


def test_children_stop_when_the_parent_is_killed(env, tmp_path):
    log_path = tmp_path / "api.log"
    api = start_api(["--processes", "2"], {**env, "DISPATCHER_EMBEDDED": "false"}, log_path)
    try:
        children = children_listening(log_path, 2)
        api.kill()
        api.wait()
        wait_until(lambda: not any(alive(pid) for pid in children), "children stopping", log_path)
        assert sum("parent process" in line["message"] for line in log_lines(log_path)) == 2
    finally:
        if api.poll() is None:
            api.kill()


def test_a_bad_process_count_is_refused():
    result = subprocess.run([sys.executable, "-m", "taskservice", "api", "--processes", "0"], cwd=ROOT,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert "--processes must be between 1 and 256" in result.stderr
