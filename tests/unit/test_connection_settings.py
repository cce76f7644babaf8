"""Settings for slow and numerous clients: defaults, parsing, and errors naming the variable."""

import pytest

from taskservice.settings import SettingsError, load_settings


def test_the_stream_and_connection_limits_are_validated():
    defaults = load_settings({})
    assert (defaults.stream_max_clients, defaults.stream_write_timeout_seconds) == (200, 30)
    assert (defaults.request_header_timeout_seconds, defaults.request_body_timeout_seconds,
            defaults.max_connections) == (75, 60, 1000)
    set_ = load_settings({"STREAM_MAX_CLIENTS": "5", "STREAM_WRITE_TIMEOUT_SECONDS": "2.5",
                          "REQUEST_HEADER_TIMEOUT_SECONDS": "5", "REQUEST_BODY_TIMEOUT_SECONDS": "7",
                          "MAX_CONNECTIONS": "50"})
    assert (set_.stream_max_clients, set_.stream_write_timeout_seconds, set_.request_header_timeout_seconds,
            set_.request_body_timeout_seconds, set_.max_connections) == (5, 2.5, 5, 7, 50)
    for name, value in (("STREAM_MAX_CLIENTS", "0"), ("STREAM_WRITE_TIMEOUT_SECONDS", "0"),
                        ("REQUEST_HEADER_TIMEOUT_SECONDS", "soon"), ("REQUEST_BODY_TIMEOUT_SECONDS", "-1"),
                        ("MAX_CONNECTIONS", "0")):
        with pytest.raises(SettingsError, match=name):
            load_settings({name: value})
