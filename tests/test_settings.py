"""Settings from the environment: defaults, parsing, and clear errors naming the variable."""

import pytest

from taskservice.settings import Settings, SettingsError, load_settings


def test_defaults_match_the_design():
    settings = load_settings({})
    assert settings.database_url == "postgresql://postgres:postgres@localhost:5432/taskservice"
    assert settings.amqp_url == "amqp://guest:guest@localhost:5672/"
    assert settings.port == 8000 and settings.dispatcher_embedded is True
    assert settings.handler_modules == ()


def test_values_are_parsed():
    settings = load_settings({"PORT": "9000", "DISPATCHER_EMBEDDED": "false", "LEASE_SECONDS": "2.5",
                              "HANDLER_MODULES": "a.b, c", "LOG_FORMAT": "JSON"})
    assert (settings.port, settings.dispatcher_embedded, settings.lease_seconds) == (9000, False, 2.5)
    assert settings.handler_modules == ("a.b", "c") and settings.log_format == "json"


@pytest.mark.parametrize("env, name", [
    ({"PORT": "eighty"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"LEASE_SECONDS": "soon"}, "LEASE_SECONDS"),
    ({"DISPATCHER_EMBEDDED": "maybe"}, "DISPATCHER_EMBEDDED"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"),
])
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        load_settings(env)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().port = 1
