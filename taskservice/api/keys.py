"""Typed keys for what the application object holds."""

import asyncio
from collections.abc import Mapping

import asyncpg
from aiohttp import web

from taskservice.kinds import Kind
from taskservice.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
# For the queries with optional filters (the list, the stream's replay): each call planned for its
# own values (taskservice.api.app.database_pools).
LIST_POOL = web.AppKey("list_pool", asyncpg.Pool)
# Set after a create commits: the API then sends one (coalesced) NOTIFY outbox_due.
OUTBOX_WAKEUP = web.AppKey("outbox_wakeup", asyncio.Event)
# Set after a status change commits (create, cancel, retry, the embedded dispatcher's): the
# process then announces it to the status streams (one coalesced NOTIFY task_events).
EVENTS_COMMITTED = web.AppKey("events_committed", asyncio.Event)
# The built-in kinds and those of HANDLER_MODULES, by name (taskservice.handlers.load_registry).
KINDS = web.AppKey("kinds", Mapping[str, Kind])
