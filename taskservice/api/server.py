"""Serve the API until SIGTERM or SIGINT, then stop cleanly."""

import asyncio
import logging
import signal

from aiohttp import web

from taskservice.api.app import create_app
from taskservice.settings import Settings

log = logging.getLogger(__name__)


async def wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(settings: Settings) -> None:
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024)
    await site.start()
    log.info("api listening on http://%s:%d", settings.host, settings.port)
    try:
        await wait_for_stop_signal()
        log.info("api stopping")
    finally:
        await runner.cleanup()
