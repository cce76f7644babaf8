"""Clients that trickle, stall, stop reading or come in too great numbers get deadlines and
limits, not a connection held for ever. Raw sockets against the server as `taskservice api` runs it
(taskservice.api.server), with deadlines small enough for a test."""

import asyncio
import dataclasses
import json
import socket
import uuid

import pytest

from taskservice import events
from taskservice.api.app import create_app
from taskservice.api.event_feed import EVENT_FEED
from taskservice.api.server import start_serving
from tests.support.sse import EventReader

STREAM = "/api/v1/tasks/stream"
GENEROUS = 10  # seconds: far more than any deadline below, so a pass never depends on timing


@pytest.fixture
async def serve(settings):
    """Start the API server with setting overrides; returns its port."""
    runners = []

    async def start(**overrides) -> int:
        runner, site = await start_serving(dataclasses.replace(settings, host="127.0.0.1", port=0, **overrides))
        runners.append(runner)
        return site.port

    yield start
    for runner in runners:
        await runner.cleanup()


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    received = b""
    async with asyncio.timeout(GENEROUS):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer with a Content-Length: status, headers (lower-cased names), body."""
    async with asyncio.timeout(GENEROUS):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")[:-2]
        headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
        body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def test_headers_that_trickle_in_are_cut_off_at_the_header_deadline(serve):
    port = await serve(request_header_timeout_seconds=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"x" * 100 + b"\r\n\r\n"

    async def trickle() -> int:
        sent = 0
        try:
            for byte in request:
                writer.write(bytes([byte]))
                await writer.drain()
                sent += 1
                await asyncio.sleep(0.2)
        except ConnectionError:
            pass
        return sent

    trickling = asyncio.create_task(trickle())
    received = await read_until_closed(reader)
    sent = await trickling
    assert received == b""  # closed without an answer
    assert sent < len(request)  # before the headers were complete
    writer.close()


async def test_a_body_that_stalls_gets_408_and_the_connection_closed(serve):
    port = await serve(request_body_timeout_seconds=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /api/v1/tasks/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"na")
    status, headers, body = await read_answer(reader)
    assert status == 408
    assert headers["content-type"] == "application/problem+json" and headers["connection"] == "close"
    assert json.loads(body)["status"] == 408
    assert await read_until_closed(reader) == b""
    writer.close()


async def test_a_promised_body_over_the_limit_is_413_at_once(serve):
    # The body deadline is far away: the answer comes before any of the body is read.
    port = await serve(request_body_timeout_seconds=600)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /api/v1/tasks/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % (1024 * 1024 + 1))
    status, headers, body = await read_answer(reader)
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 413
    writer.close()


async def get_health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    status, _, _ = await read_answer(reader)
    return status


async def test_connections_past_the_limit_are_refused_with_503(serve):
    port = await serve(max_connections=2)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for reader, writer in held:
        assert await get_health(reader, writer) == 200  # served, and kept open (keep-alive)

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    status, headers, body = await read_answer(reader)
    assert status == 503
    assert headers["retry-after"] == "1" and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == 503
    assert await read_until_closed(reader) == b""
    writer.close()

    # A closed connection frees its place.
    held[0][1].close()
    async with asyncio.timeout(GENEROUS):
        while True:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                if await get_health(reader, writer) == 200:
                    break
            except (asyncio.IncompleteReadError, ConnectionError, KeyError):
                pass  # refused: the close is not seen yet
            finally:
                writer.close()
            await asyncio.sleep(0.1)
    assert await get_health(*held[1]) == 200
    held[1][1].close()


async def test_an_idle_connection_is_closed_at_the_header_deadline(serve):
    port = await serve(request_header_timeout_seconds=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await get_health(reader, writer) == 200
    assert await read_until_closed(reader) == b""  # it held a connection without a request
    writer.close()


async def test_streams_past_the_limit_are_503_with_retry_after(aiohttp_client, settings):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, stream_max_clients=1)))
    first = await client.get(STREAM)
    assert first.status == 200
    await EventReader(first).until_ready()
    second = await client.get(STREAM)
    assert second.status == 503
    assert second.content_type == "application/problem+json"
    assert int(second.headers["Retry-After"]) > 0
    first.close()
    # The place is free again once the first stream has ended.
    async with asyncio.timeout(GENEROUS):
        while (third := await client.get(STREAM)).status == 503:
            await asyncio.sleep(0.1)
    assert third.status == 200
    third.close()


async def test_a_stream_client_that_stops_reading_is_dropped_and_disconnected(aiohttp_server, settings, pool):
    app = create_app(dataclasses.replace(settings, stream_write_timeout_seconds=0.5))

    async def small_buffers(request, response) -> None:
        # A few kilobytes fill the way to this client, instead of the megabytes the kernel would allow.
        if request.path == STREAM:
            request.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            request.transport.set_write_buffer_limits(high=4096)

    app.on_response_prepare.append(small_buffers)
    server = await aiohttp_server(app)
    feed = app[EVENT_FEED]
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (server.host, server.port))
    await loop.sock_sendall(sock, f"GET {STREAM} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    async with asyncio.timeout(GENEROUS):
        while not (feed.subscribers and feed.announced.is_set()):
            await asyncio.sleep(0.05)

    name = f"unread-{uuid.uuid4().hex}"
    async with pool.acquire() as conn:  # 500 events, about 100 kB: far more than the buffers hold
        await conn.execute("INSERT INTO tasks (name, kind, timeout_seconds) "
                           "SELECT $1, 'noop', 60 FROM generate_series(1, 500)", name)
        await events.announce(conn)
    try:
        async with asyncio.timeout(GENEROUS):
            while feed.subscribers or server.runner.server.connections:
                await asyncio.sleep(0.05)
        # The server closed the connection: the client reads what was in flight, then its end.
        async with asyncio.timeout(GENEROUS):
            while True:
                try:
                    if not await loop.sock_recv(sock, 65536):
                        break
                except ConnectionResetError:
                    break
    finally:
        sock.close()
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM tasks WHERE name = $1", name)


async def test_a_stream_that_is_read_is_not_dropped(aiohttp_client, settings, pool):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, stream_write_timeout_seconds=0.5,
                                                                 stream_heartbeat_seconds=0.1)))
    resp = await client.get(STREAM)
    reader = EventReader(resp)
    await reader.until_ready()
    heartbeats = 0
    while heartbeats < 15:  # 1.5 s of heartbeats: three write timeouts
        message = await reader.next()
        assert message is not None, "the stream ended"
        heartbeats += bool(message.comments)
    resp.close()
