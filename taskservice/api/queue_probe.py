"""The queue depths for /api/v1/stats: RabbitMQ asked over a connection the API opens on first
use, the answers cached for a second. None, never an error, when the broker cannot say: the
API's other routes never need RabbitMQ, and its stats must not either."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
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


# Task queues probed per stats request at most (one channel each); the others show null.
MAX_PROBED_QUEUES = 50


@dataclass
class QueueProbe:
    connection: AbstractConnection | None = None
    depths: dict[str, int | None] = field(default_factory=dict)  # task queue -> messages ready
    fresh_until: float = float("-inf")  # loop time
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one probe at a time


QUEUE_PROBE = web.AppKey("queue_probe", QueueProbe)


async def close_quickly(connection: AbstractConnection | None) -> None:
    if connection is None or connection.is_closed:
        return
    with contextlib.suppress(*broker.BROKER_ERRORS):
        async with asyncio.timeout(0.5):
            await connection.close()


async def queue_depths(probe: QueueProbe, settings: Settings, queues: Sequence[str]) -> dict[str, int | None]:
    """Messages ready in each task queue; None for one RabbitMQ has not (NOT_FOUND: nothing was
    published to it yet), and for every one when the broker is unreachable."""
    loop = asyncio.get_running_loop()
    wanted = list(queues)[:MAX_PROBED_QUEUES]
    async with probe.lock:
        if loop.time() < probe.fresh_until and probe.depths.keys() >= set(wanted):
            return {queue: probe.depths[queue] for queue in wanted}
        depths: dict[str, int | None] = dict.fromkeys(wanted)
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                if probe.connection is None or probe.connection.is_closed:
                    probe.connection = await aio_pika.connect(
                        settings.amqp_url, timeout=PROBE_TIMEOUT_SECONDS,
                        client_properties={"connection_name": "taskservice-api-stats"})
                for queue in wanted:
                    try:
                        depths[queue] = await broker.queue_depth(probe.connection, broker.queue_name(settings, queue))
                    except aio_pika.exceptions.ChannelClosed as exc:  # NOT_FOUND closes only its channel
                        log.debug("queue %s depth unknown (%s)", queue, exc)
        except broker.BROKER_ERRORS as exc:
            log.info("queue depth unknown (%s)", type(exc).__name__)
            # The connection may be half-open: drop it, the next probe starts afresh.
            stale, probe.connection = probe.connection, None
            await close_quickly(stale)
            depths = dict.fromkeys(wanted)
            probe.fresh_until = loop.time() + RETRY_AFTER_FAILURE_SECONDS
        else:
            probe.fresh_until = loop.time() + CACHE_SECONDS
        probe.depths = depths
        return depths


async def queue_probe(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the probe, and its connection closed at the end if one was opened."""
    probe = QueueProbe()
    app[QUEUE_PROBE] = probe
    yield
    await broker.close(probe.connection)
