"""Callback rules that need no service: which addresses are public, the signature, the backoff,
the settings."""

import hashlib
import hmac
import ipaddress

import pytest

from taskservice import callbacks
from taskservice.settings import SettingsError, load_settings

REFUSED = [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "100.127.255.254", "0.0.0.0", "224.0.0.1", "233.1.1.1", "240.0.0.1", "255.255.255.255", "192.0.0.1",
    "198.18.0.1", "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1",
    "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "2002:7f00:1::", "2001:db8::1",
]
PUBLIC = ["8.8.8.8", "93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address):
    assert not callbacks.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert callbacks.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "http:///path", "//example.com/x",
                                 "example.com/hook", "https://example.com:70000/"])
def test_malformed_urls_have_a_problem(url):
    assert callbacks.url_problem(url) is not None


@pytest.mark.parametrize("url", ["https://example.com/hook?x=1", "http://127.0.0.1:8080/", "http://[::1]/h"])
def test_well_formed_urls_have_none(url):
    assert callbacks.url_problem(url) is None


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"id": "x"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert callbacks.signature("s3cret", 1700000000, body) == f"t=1700000000,v1={expected}"


def test_backoff_is_full_jitter_under_the_cap():
    delays = [callbacks.backoff_seconds(attempt, 1.0, 30.0) for attempt in range(1, 40) for _ in range(20)]
    assert all(0 <= d <= 30.0 for d in delays)
    assert max(callbacks.backoff_seconds(1, 1.0, 30.0) for _ in range(200)) <= 1.0
    assert max(delays) > 10  # grows with the attempt
    assert callbacks.backoff_seconds(10_000, 1.0, 30.0) <= 30.0  # no overflow


def test_callback_settings_are_read_and_secrets_kept_out_of_repr():
    settings = load_settings({"CALLBACK_SECRET": "new-one, old-one", "CALLBACK_ALLOW_PRIVATE": "true",
                              "CALLBACK_TIMEOUT_SECONDS": "3", "CALLBACK_RETRY_HOURS": "0.5"})
    assert settings.callback_secrets == ("new-one", "old-one")
    assert settings.callback_allow_private and settings.callback_timeout_seconds == 3
    assert settings.callback_retry_hours == 0.5
    assert "new-one" not in repr(settings)
    defaults = load_settings({})
    assert defaults.callback_secrets == () and not defaults.callback_allow_private
    assert defaults.callback_timeout_seconds == 10 and defaults.callback_retry_hours == 24


@pytest.mark.parametrize("env", [{"CALLBACK_TIMEOUT_SECONDS": "0"}, {"CALLBACK_RETRY_HOURS": "-1"},
                                 {"CALLBACK_ALLOW_PRIVATE": "maybe"}, {"CALLBACK_SECRET": "with space"}])
def test_bad_callback_settings_stop_start_up(env):
    with pytest.raises(SettingsError, match=next(iter(env))) as raised:
        load_settings(env)
    assert "with space" not in str(raised.value)
