"""Typed keys for what the application object holds."""

import asyncpg
from aiohttp import web

from taskservice.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
