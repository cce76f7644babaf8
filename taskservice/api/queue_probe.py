"""The queue depth for /api/v1/stats: RabbitMQ asked over a connection the API opens on first
use, the answer cached for a second. None, never an error, when the broker cannot say: the
API's other routes never need RabbitMQ, and its stats must not either."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractConnection
from aiohttp import web

from taskservice import broker
from taskservice.settings import Settings

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 1.0  # connecting included: a stats request never waits longer
RETRY_AFTER_FAILURE_SECONDS = 5.0  # an unreachable broker costs a slow probe at most this often


@dataclass
class QueueProbe:
    connection: AbstractConnection | None = None
    depth: int | None = None
    fresh_until: float = float("-inf")  # loop time
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one probe at a time


QUEUE_PROBE = web.AppKey("queue_probe", QueueProbe)


async def close_quickly(connection: AbstractConnection | None) -> None:
    if connection is None or connection.is_closed:
        return
    with contextlib.suppress(*broker.BROKER_ERRORS):
        async with asyncio.timeout(0.5):
            await connection.close()


async def queue_depth(probe: QueueProbe, settings: Settings) -> int | None:
    """Messages ready in the task queue; None when RabbitMQ is unreachable or has no such queue."""
    loop = asyncio.get_running_loop()
    async with probe.lock:
        if loop.time() < probe.fresh_until:
            return probe.depth
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                if probe.connection is None or probe.connection.is_closed:
                    probe.connection = await aio_pika.connect(
                        settings.amqp_url, timeout=PROBE_TIMEOUT_SECONDS,
                        client_properties={"connection_name": "taskservice-api-stats"})
                probe.depth = await broker.queue_depth(probe.connection, settings.amqp_queue)
        except broker.BROKER_ERRORS as exc:
            log.info("queue depth unknown (%s)", type(exc).__name__)
            if not isinstance(exc, aio_pika.exceptions.ChannelClosed):  # (NOT_FOUND closes a channel)
                # The connection may be half-open: drop it, the next probe starts afresh.
                stale, probe.connection = probe.connection, None
                await close_quickly(stale)
            probe.depth = None
            probe.fresh_until = loop.time() + RETRY_AFTER_FAILURE_SECONDS
        else:
            probe.fresh_until = loop.time() + CACHE_SECONDS
        return probe.depth


async def queue_probe(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the probe, and its connection closed at the end if one was opened."""
    probe = QueueProbe()
    app[QUEUE_PROBE] = probe
    yield
    await broker.close(probe.connection)
