"""Each command runs as a real process and exits 0 on SIGTERM (design §6)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The log line each command writes once it is doing its job.
STARTED = {
    "api": "api listening",
    "dispatcher": "dispatcher publishing",
    "worker": "consuming",
    "run": "consuming",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def process_logging_to(command: str, env: dict, log_path: Path):
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "taskservice", command],
                                   env={**os.environ, "LOG_LEVEL": "info", "PYTHONPATH": str(ROOT), **env},
                                   cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for_line(process: subprocess.Popen, log_path: Path, text: str) -> None:
    deadline = time.monotonic() + 20
    while text not in log_path.read_text():
        assert process.poll() is None, f"exited early:\n{log_path.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log_path.read_text()}"
        time.sleep(0.1)


@pytest.mark.parametrize("command", sorted(STARTED))
def test_command_starts_and_exits_0_on_sigterm(command, settings, tmp_path):
    env = {"DATABASE_URL": settings.database_url, "AMQP_URL": settings.amqp_url,
           "AMQP_EXCHANGE": settings.amqp_exchange, "AMQP_QUEUE": settings.amqp_queue,
           "HOST": "127.0.0.1", "PORT": str(free_port())}
    log_path = tmp_path / f"{command}.log"
    with process_logging_to(command, env, log_path) as process:
        wait_for_line(process, log_path, STARTED[command])
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0, log_path.read_text()


@pytest.mark.parametrize("command", ["dispatcher", "worker"])
def test_stopping_while_the_broker_is_unreachable_exits_0(command, settings, tmp_path):
    env = {"DATABASE_URL": settings.database_url, "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"}
    log_path = tmp_path / f"{command}.log"
    with process_logging_to(command, env, log_path) as process:
        wait_for_line(process, log_path, "RabbitMQ unreachable")
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0, log_path.read_text()
        assert "Traceback" not in log_path.read_text()
