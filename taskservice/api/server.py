"""Serve the API until SIGTERM or SIGINT, then stop cleanly."""

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from taskservice.api.app import create_app
from taskservice.api.problems import PROBLEM_CONTENT_TYPE
from taskservice.settings import Settings

log = logging.getLogger(__name__)

# A refused connection gets this long to take its 503 (and the rest of its request is read and
# dropped), so its client sees the answer rather than a reset.
REFUSAL_LINGER_SECONDS = 1.0
REFUSAL_BODY = orjson.dumps({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                             "detail": "The server has too many open connections; try again shortly."})
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\n"
           b"Content-Type: " + PROBLEM_CONTENT_TYPE.encode() + b"\r\n"
           b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" % len(REFUSAL_BODY)
           + REFUSAL_BODY)


@dataclass
class ConnectionCount:
    limit: int
    open: int = 0


class CountedConnection(asyncio.Protocol):
    """One accepted connection: served by aiohttp while fewer than the limit are open, else answered
    with a 503 and closed. Decided in connection_made, which the loop calls one connection at a time."""

    def __init__(self, count: ConnectionCount, make_handler: Callable[[], asyncio.Protocol]) -> None:
        self.count = count
        self.make_handler = make_handler
        self.handler: asyncio.Protocol | None = None
        self.refusal: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.count.open >= self.count.limit:
            transport.write(REFUSAL)
            transport.write_eof()
            self.refusal = asyncio.get_running_loop().call_later(REFUSAL_LINGER_SECONDS, transport.close)
            return
        self.count.open += 1
        self.handler = self.make_handler()
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.handler is not None:
            self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received() if self.handler is not None else None

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.refusal is not None:
            self.refusal.cancel()
        if self.handler is not None:
            self.count.open -= 1
            self.handler.connection_lost(exc)


class BoundedTCPSite(web.BaseSite):
    """A TCP listener like aiohttp's TCPSite, serving at most `max_connections` connections at a time."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int,
                 backlog: int, reuse_port: bool = False) -> None:
        super().__init__(runner, backlog=backlog)
        self.host, self.requested_port, self.port = host, port, port
        self.connections = ConnectionCount(max_connections)
        self.reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: CountedConnection(self.connections, server), self.host, self.requested_port,
            backlog=self._backlog, reuse_address=True, reuse_port=self.reuse_port or None)
        self.port = self._server.sockets[0].getsockname()[1]  # the one chosen for port 0


async def start_serving(settings: Settings, *, reuse_port: bool = False) -> tuple[web.AppRunner, BoundedTCPSite]:
    """Start the API; `reuse_port` lets the sibling processes of `api --processes N` listen on the
    same port, the kernel spreading new connections among them."""
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = BoundedTCPSite(runner, settings.host, settings.port, max_connections=settings.max_connections,
                          backlog=1024, reuse_port=reuse_port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site


# A full collection scans every object the process holds: with 5,000 waiting requests open, each
# one stopped the API for up to 320 ms, 17 times in the waits bench (bench/README.md).
FULL_COLLECTION_EVERY = 1000  # younger collections; Python's default is 10


def tune_gc() -> None:
    """Freeze the objects made while starting (modules, the app, its routes and schemas: they live
    as long as the process) out of the collector, and collect everything only after
    FULL_COLLECTION_EVERY collections of the middle generation: a request's cycles die young."""
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


async def serve(settings: Settings, stop: asyncio.Event, *, reuse_port: bool = False) -> None:
    """Serve until `stop` is set."""
    runner, _ = await start_serving(settings, reuse_port=reuse_port)
    tune_gc()
    log.info("api listening on http://%s:%d", settings.host, settings.port)
    try:
        await stop.wait()
        log.info("api stopping")
    finally:
        await runner.cleanup()
