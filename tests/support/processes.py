"""The service's commands as real processes, for tests: start one logging to a file, wait for a line."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.services import ROOT
from tests.support.venvs import outside_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def process_logging_to(command: str, env: dict, log_path: Path, *, python: Path | None = None):
    """`taskservice <command>` from this source tree, or with `python` the one installed in that
    venv (tests/support/venvs.py), run outside the tree."""
    if python is None:
        base, cwd = {**os.environ, "PYTHONPATH": str(ROOT)}, ROOT
    else:
        base, cwd = outside_env(), log_path.parent
    with log_path.open("w") as log:
        process = subprocess.Popen([str(python or sys.executable), "-m", "taskservice", command],
                                   env={**base, "LOG_LEVEL": "info", **env},
                                   cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
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
