"""What a request body may be before a schema sees it: its content coding, its size, and JSON
without a key given twice. Every refusal is problem+json, and none writes an error into the log."""

import dataclasses
import gzip
import logging
import zlib

import pytest

from taskservice.api.app import create_app

TASKS = "/api/v1/tasks/"
JSON = {"Content-Type": "application/json"}
BODY = b'{"name": "encoded", "payload": {"n": 1}}'


def no_errors_logged(caplog) -> None:
    """Nothing above INFO but at most one WARNING line, and no traceback."""
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) <= 1 and all(r.levelno == logging.WARNING and not r.exc_info for r in loud), \
        [(r.levelname, r.getMessage()) for r in loud]


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "x-gzip"])
async def test_a_body_that_does_not_decode_is_400(client, caplog, encoding):
    resp = await client.post(TASKS, data=BODY, headers={**JSON, "Content-Encoding": encoding})
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    assert encoding in (await resp.json())["detail"]
    no_errors_logged(caplog)


async def test_a_body_that_does_not_decode_logs_no_error_before_auth_either(aiohttp_client, settings, caplog):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, api_keys=("secret",))))
    resp = await client.post(TASKS, data=BODY, headers={**JSON, "Content-Encoding": "gzip"})
    assert resp.status == 401
    no_errors_logged(caplog)


async def test_a_truncated_gzip_body_is_400(client, caplog):
    resp = await client.post(TASKS, data=gzip.compress(BODY)[:-6], headers={**JSON, "Content-Encoding": "gzip"})
    assert resp.status == 400
    no_errors_logged(caplog)


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "rot13", "gzip, gzip"])
async def test_an_unsupported_content_encoding_is_415(client, caplog, encoding):
    resp = await client.post(TASKS, data=BODY, headers={**JSON, "Content-Encoding": encoding})
    assert resp.status == 415
    assert resp.content_type == "application/problem+json"
    assert resp.headers["Accept-Encoding"] == "gzip, deflate"
    no_errors_logged(caplog)


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # raw deflate, as some clients send
    ("identity", lambda data: data),
])
async def test_an_encoded_body_is_decoded(client, encoding, encode):
    resp = await client.post(TASKS, data=encode(BODY), headers={**JSON, "Content-Encoding": encoding})
    assert resp.status == 201, await resp.text()
    task = await resp.json()
    assert (task["name"], task["payload"]) == ("encoded", {"n": 1})


async def test_a_body_that_decodes_past_the_size_limit_is_413(client):
    bomb = gzip.compress(b'{"name": "' + b"x" * (64 * 1024 * 1024) + b'"}')  # 64 MiB in about 64 KiB
    assert len(bomb) < 1024 * 1024
    resp = await client.post(TASKS, data=bomb, headers={**JSON, "Content-Encoding": "gzip"})
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"


async def test_a_body_over_the_size_limit_is_413(client):
    resp = await client.post(TASKS, data=b'{"name": "' + b"x" * (1024 * 1024) + b'"}', headers=JSON)
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"


@pytest.mark.parametrize("raw, key", [
    (b'{"name": "a", "name": "b"}', "name"),
    (b'{"name": "a", "payload": {"n": 1, "m": 2, "n": 3}}', "n"),
    (b'{"name": "a", "payload": {"list": [{"k": 1, "k": 1}]}}', "k"),
])
async def test_a_key_given_twice_in_one_object_is_400_naming_it(client, raw, key):
    resp = await client.post(TASKS, data=raw, headers=JSON)
    assert resp.status == 400
    problem = await resp.json()
    assert problem["status"] == 400 and f"'{key}'" in problem["detail"]


async def test_the_same_key_in_different_objects_is_fine(client):
    resp = await client.post(TASKS, data=b'{"name": "a", "payload": {"name": "b", "x": {"name": "c"}}}',
                             headers=JSON)
    assert resp.status == 201
    assert (await resp.json())["payload"] == {"name": "b", "x": {"name": "c"}}


@pytest.mark.parametrize("depth", [995, 1010, 1024])
async def test_json_nested_as_deep_as_the_parser_allows_is_refused_not_crashed(client, caplog, depth):
    raw = b'{"name": "x", "payload": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
    resp = await client.post(TASKS, data=raw, headers=JSON)
    assert resp.status in (400, 422)
    assert resp.content_type == "application/problem+json"
    no_errors_logged(caplog)
