"""Request bodies before any schema sees them: type, size, content coding, read deadline, JSON."""

import asyncio
import json
import zlib
from typing import Any

import orjson
from aiohttp import web
from webargs import core

from taskservice.api.problems import Problem
from taskservice.settings import Settings

# Content-Encoding -> zlib window bits. aiohttp's own decoding is off (create_app's handler_args):
# it turned a body that does not decode into an unhandled error; here it is the client's 400.
WINDOW_BITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
ACCEPTED_ENCODINGS = "gzip, deflate"
# The answer to a client that will not be heard out: its unread body ends the connection.
CLOSE = {"Connection": "close"}
# The one route whose body may be larger than MAX_BODY_BYTES (Settings.batch_max_body_bytes).
BATCH_PATH = "/api/v1/tasks/batch"


def max_body_bytes(path: str, settings: Settings) -> int:
    """The body limit of the route at `path` (its template)."""
    return settings.batch_max_body_bytes if path == BATCH_PATH else settings.max_body_bytes


def content_coding(request: web.BaseRequest) -> str | None:
    """The body's content coding, None for none; 415 for one this service cannot decode."""
    codings = [c.strip().lower() for c in request.headers.get("Content-Encoding", "").split(",")]
    codings = [c for c in codings if c not in ("", "identity")]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in WINDOW_BITS:
        return codings[0]
    raise Problem(415, f"Unsupported Content-Encoding; send the body as {ACCEPTED_ENCODINGS} or unencoded.",
                  headers={"Accept-Encoding": ACCEPTED_ENCODINGS})


def decoded(body: bytes, coding: str, limit: int) -> bytes:
    """`body` decoded, never inflating more than `limit` + 1 bytes (a small body may inflate to gigabytes)."""
    wbits = WINDOW_BITS[coding]
    if coding == "deflate" and body and body[0] & 0x0F != 8:
        wbits = -zlib.MAX_WBITS  # raw deflate without the zlib header, as some clients send it
    decoder = zlib.decompressobj(wbits)
    try:
        data = decoder.decompress(body, limit + 1)
    except zlib.error:
        raise Problem(400, f"The body is not valid {coding} data.") from None
    if len(data) > limit:
        raise Problem(413, f"The decoded body is larger than {limit} bytes.", headers=CLOSE)
    if not decoder.eof or decoder.unused_data:
        raise Problem(400, f"The body is not one complete {coding} stream.")
    return data


class DuplicateKey(ValueError):
    pass


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) < len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return value


# Built once: json.loads would build a decoder on every call.
DUPLICATE_KEY_CHECK = json.JSONDecoder(object_pairs_hook=unique_keys)


def parsed_json(body: bytes) -> Any:
    """The JSON value of `body`. orjson parses (and sets the rules: UTF-8, no NaN, depth); the standard
    parser then looks for a key given twice in one object, which orjson lets the last one win."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"The body is not valid JSON: {exc}.") from None
    try:
        DUPLICATE_KEY_CHECK.decode(body.decode())  # UTF-8: orjson accepted it
    except DuplicateKey as exc:
        key = str(exc.args[0])
        shown = key if len(key) <= 100 else key[:100] + "..."
        raise Problem(400, f"The body gives the key {shown!r} more than once in one object.") from None
    except RecursionError:
        raise Problem(400, "The body is not valid JSON: nested too deeply.") from None
    return value


async def read_json(request: web.Request, settings: Settings) -> Any:
    """The request's JSON body, or webargs' `missing` when there is none."""
    if not request.body_exists:
        return core.missing
    if not core.is_json(request.content_type):
        raise Problem(415, f"Send the body as application/json, not {request.content_type}.")
    limit = max_body_bytes(request.match_info.route.resource.canonical, settings)
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, f"The body is larger than {limit} bytes.", headers=CLOSE)
    coding = content_coding(request)
    if limit > request.client_max_size:
        request = request.clone(client_max_size=limit)  # the app's own limit is MAX_BODY_BYTES
    try:
        async with asyncio.timeout(settings.request_body_timeout_seconds):
            body = await request.read()  # aiohttp stops past client_max_size (the limit) with 413
    except TimeoutError:
        raise Problem(408, f"The body did not arrive within {settings.request_body_timeout_seconds:g} s.",
                      headers=CLOSE) from None
    if coding is not None:
        body = decoded(body, coding, limit)
    return parsed_json(body)
