"""`taskservice worker --queues a,b` and WORKER_QUEUES: which task queues a worker consumes."""

import pytest

from taskservice.__main__ import parse_args, with_options
from taskservice.broker import queue_name
from taskservice.settings import Settings, SettingsError, load_settings


def test_a_worker_consumes_the_default_queue_unless_told_otherwise():
    assert load_settings({}).worker_queues == ("default",)
    assert with_options(Settings(), parse_args(["worker"])).worker_queues == ("default",)


@pytest.mark.parametrize("command", ["worker", "run"])
def test_the_queues_flag_names_the_queues_and_wins_over_the_setting(command):
    settings = load_settings({"WORKER_QUEUES": "reports"})
    args = parse_args([command, "--queues", " emails, reports ,emails,"])
    assert with_options(settings, args).worker_queues == ("emails", "reports")
    assert settings.worker_queues == ("reports",)


@pytest.mark.parametrize("bad", ["has space", "a,b c", "x" * 101, "é"])
def test_a_bad_queue_name_stops_start_up_naming_it(bad):
    with pytest.raises(SettingsError, match="--queues"):
        with_options(Settings(), parse_args(["worker", "--queues", bad]))
    with pytest.raises(SettingsError, match="WORKER_QUEUES"):
        load_settings({"WORKER_QUEUES": bad})


def test_only_the_worker_and_run_take_queues():
    with pytest.raises(SystemExit):
        parse_args(["api", "--queues", "emails"])


def test_the_default_queue_keeps_the_rabbitmq_queue_deployments_have():
    settings = Settings(amqp_queue="taskservice.tasks")
    assert queue_name(settings, "default") == "taskservice.tasks"
    assert queue_name(settings, "emails") == "taskservice.tasks:emails"
    # A task queue called "dead" is not the dead-letter queue.
    assert queue_name(settings, "dead") != "taskservice.tasks.dead"
