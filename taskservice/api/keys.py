"""Typed keys for what the application object holds."""

from collections.abc import Mapping

import asyncpg
from aiohttp import web

from taskservice.api.memo import Memo
from taskservice.batching import Batcher
from taskservice.handoff import Handoff
from taskservice.kinds import Kind
from taskservice.settings import Settings
from taskservice.wakeups import AfterCommit

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
# For the queries with optional filters (the list, the stream's replay): each call planned for its
# own values (taskservice.api.app.database_pools).
LIST_POOL = web.AppKey("list_pool", asyncpg.Pool)
# Single creates, written together (taskservice.api.creates).
CREATES = web.AppKey("creates", Batcher)
# The creates' outbox rows for the embedded dispatcher, while it takes them (taskservice.handoff).
HANDOFF = web.AppKey("handoff", Handoff)
# Each search's index key, remembered for seconds (taskservice.api.memo).
SEARCH_KEYS = web.AppKey("search_keys", Memo)
# The searches (without a status or schedule filter) that matched more than the count limit, remembered for
# seconds (taskservice.api.memo): their capped total is not counted again.
CAPPED_SEARCHES = web.AppKey("capped_searches", Memo)
# This process's id in the payload of its NOTIFYs: its own dispatcher and event feed, woken
# in-process (OUTBOX_WAKEUP, EVENTS_COMMITTED), skip them.
PROCESS_ID = web.AppKey("process_id", str)
# Set after a create commits: wakes the embedded dispatcher at once, and the API sends a (paced)
# NOTIFY outbox_due for the others.
OUTBOX_WAKEUP = web.AppKey("outbox_wakeup", AfterCommit)
# Set after a status change commits (create, cancel, retry, the embedded dispatcher's): wakes this
# process's event feed at once, and the process announces it to the others (a paced NOTIFY task_events).
EVENTS_COMMITTED = web.AppKey("events_committed", AfterCommit)
# The built-in kinds and those of HANDLER_MODULES, by name (taskservice.handlers.load_registry).
KINDS = web.AppKey("kinds", Mapping[str, Kind])
