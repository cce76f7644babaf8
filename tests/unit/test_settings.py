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
    ({"DB_POOL_MIN": "20", "DB_POOL_MAX": "5"}, "DB_POOL_MIN"),
    ({"DEFAULT_KIND": "x" * 101}, "DEFAULT_KIND"),
    ({"DEFAULT_KIND": "has space"}, "DEFAULT_KIND"),
    ({"API_PROCESSES": "0"}, "API_PROCESSES"),
])
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        load_settings(env)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().port = 1


def test_protection_and_upkeep_defaults():
    settings = load_settings({})
    assert settings.api_keys == () and not settings.auth_protect_docs and not settings.auth_protect_metrics
    assert settings.idempotency_ttl_seconds == 86_400 and settings.max_result_bytes == 1024 * 1024
    assert (settings.retention_days, settings.outbox_retention_seconds) == (30, 3600)
    assert settings.maintenance_interval_seconds == 60


def test_api_keys_are_comma_separated_and_stay_out_of_repr():
    settings = load_settings({"API_KEYS": " key-one , key-two,, ", "AUTH_PROTECT_DOCS": "true",
                              "RETENTION_DAYS": "0"})
    assert settings.api_keys == ("key-one", "key-two")
    assert settings.auth_protect_docs and settings.retention_days == 0
    assert "key-one" not in repr(settings)


@pytest.mark.parametrize("env, name", [
    ({"RETENTION_DAYS": "-1"}, "RETENTION_DAYS"),
    ({"MAX_RESULT_BYTES": "0"}, "MAX_RESULT_BYTES"),
    ({"IDEMPOTENCY_TTL_SECONDS": "0"}, "IDEMPOTENCY_TTL_SECONDS"),
    ({"OUTBOX_RETENTION_SECONDS": "soon"}, "OUTBOX_RETENTION_SECONDS"),
    ({"MAINTENANCE_INTERVAL_SECONDS": "0"}, "MAINTENANCE_INTERVAL_SECONDS"),
    ({"AUTH_PROTECT_METRICS": "maybe"}, "AUTH_PROTECT_METRICS"),
])
def test_bad_upkeep_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        load_settings(env)


def test_a_bad_api_key_is_refused_without_quoting_it():
    with pytest.raises(SettingsError, match="API_KEYS") as caught:
        load_settings({"API_KEYS": "good-key,secret with spaces"})
    assert "secret" not in str(caught.value) and "good-key" not in str(caught.value)
