"""Serve the API until SIGTERM or SIGINT, then stop cleanly."""

import asyncio
import logging

from aiohttp import web

from taskservice.api.app import create_app
from taskservice.settings import Settings

log = logging.getLogger(__name__)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Serve until `stop` is set."""
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024)
    await site.start()
    log.info("api listening on http://%s:%d", settings.host, settings.port)
    try:
        await stop.wait()
        log.info("api stopping")
    finally:
        await runner.cleanup()
