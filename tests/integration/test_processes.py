"""Each command runs as a real process and exits 0 on SIGTERM (docs/design.md, Processes)."""

import signal

import pytest

from tests.support.processes import free_port, process_logging_to, wait_for_line

# The log line each command writes once it is doing its job.
STARTED = {
    "api": "api listening",
    "dispatcher": "dispatcher publishing",
    "worker": "consuming",
    "run": "consuming",
}


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
        log_text = log_path.read_text()
        assert "Traceback" not in log_text, log_text  # whole, so a rare failure shows which loop raised
