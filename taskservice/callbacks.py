"""Completion webhooks: which URLs may be called, signing, and delivering the rows that
record_status_changes() writes when a task with a `callback_url` finishes.

Delivery is at-least-once: a row is leased (sql/callbacks/claim_due.sql), POSTed with no
transaction open, then settled; a dispatcher that dies mid-request leaves the row to come
due again. Each request carries the delivery id (X-Taskservice-Delivery) for receivers to
de-duplicate, and, with CALLBACK_SECRET set, X-Taskservice-Signature:
`t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>` (the first secret signs).
"""

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from taskservice import db, metrics, tasks
from taskservice.lifecycle import wait_for
from taskservice.settings import Settings
from taskservice.sql import QUERIES

log = logging.getLogger(__name__)

SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0
# Kept of a failed response's body, as an excerpt in the attempt's error; the rest is never read.
RESPONSE_EXCERPT_BYTES = 1024
# A lease outlives the request timeout by this much, so only a dispatcher that died gives its rows up.
LEASE_MARGIN_SECONDS = 5.0
USER_AGENT = "taskservice-callbacks"

# Not covered by ipaddress' flags in every Python version: shared address space (CGNAT), and
# the IPv6 prefixes that carry an IPv4 address a gateway would reach (NAT64, 6to4).
REFUSED_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16",
    "fd00:ec2::254/128"))


class RefusedAddress(OSError):
    """The callback's host is, or resolves only to, addresses callbacks may not reach."""


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally reachable unicast: not loopback, private, link-local (169.254.169.254, the cloud
    metadata address, is), multicast, reserved, unspecified or shared."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None and not is_public(embedded):
            return False
        if address.ipv4_mapped is not None:
            return True
    if any(address in network for network in REFUSED_NETWORKS if network.version == address.version):
        return False
    return address.is_global and not (address.is_private or address.is_loopback or address.is_link_local
                                      or address.is_multicast or address.is_reserved or address.is_unspecified)


def is_public_text(address: str) -> bool:
    parsed = ip_literal(address)
    return parsed is not None and is_public(parsed)


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a callback URL on its face (scheme, host), or None."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "Must be an absolute http or https URL."
    if parsed.scheme not in SCHEMES:
        return "Must use http or https."
    if not parsed.host:
        return "Must name a host."
    try:
        parsed.port  # noqa: B018  (an out-of-range port raises)
    except ValueError:
        return "Must have a valid port."
    return None


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, through the event loop's getaddrinfo."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


async def refusal(url: str, allow_private: bool) -> str | None:
    """Why callbacks may not go to `url`, or None: its form, a host that does not resolve, or
    (unless `allow_private`) a host that resolves to any non-public address."""
    if (problem := url_problem(url)) is not None:
        return problem
    parsed = URL(url)
    if ip_literal(parsed.host) is not None:
        addresses = [parsed.host]
    else:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                addresses = await resolve(parsed.host, parsed.port or 0)
        except (OSError, UnicodeError, TimeoutError):
            return f"Host {parsed.host!r} does not resolve."
    if not allow_private and not all(is_public_text(address) for address in addresses):
        return (f"Host {parsed.host!r} is or resolves to a loopback, private, link-local or otherwise "
                "non-public address (see CALLBACK_ALLOW_PRIVATE).")
    return None


class PublicAddressResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses callbacks may reach: the connection goes to
    an address checked at delivery time, whatever the name resolved to when the task was created
    (DNS rebinding). A host that resolves to nothing allowed fails the attempt."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._allow_private or is_public_text(r["host"])]
        if not allowed:
            raise RefusedAddress(f"{host} resolves only to non-public addresses "
                                 f"({', '.join(sorted({r['host'] for r in results}))})")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Taskservice-Signature value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform over [0, min(cap, base * 2^(attempt-1))]."""
    return random.uniform(0, min(cap, base * 2 ** min(attempt - 1, 60)))


# -- the tables: one function per SQL file under sql/callbacks/ --------------------

async def claim_due(conn: asyncpg.Connection, batch_size: int, lease_seconds: float) -> list[asyncpg.Record]:
    """Due deliveries (id, task_id, url, attempts, created_at), leased for `lease_seconds`,
    their attempt counted."""
    return await conn.fetch(QUERIES["callbacks/claim_due"], batch_size, lease_seconds)


async def record_attempt(conn: asyncpg.Connection, delivery_id: UUID, attempt: int, started_at: datetime,
                         duration_seconds: float, status_code: int | None, error: str | None,
                         retry_in_seconds: float, retry_window_seconds: float, delivered: bool) -> str | None:
    """Settle one attempt; its outcome (delivered, retry, failed), or None when a newer attempt
    owns the delivery."""
    return await conn.fetchval(QUERIES["callbacks/record_attempt"], delivery_id, attempt, started_at,
                               duration_seconds, status_code, error, retry_in_seconds, retry_window_seconds,
                               delivered)


async def list_for_task(conn: asyncpg.Connection, task_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(QUERIES["callbacks/list_for_task"], task_id)


# -- delivery ---------------------------------------------------------------------

def printable(raw: bytes) -> str:
    # PostgreSQL text cannot hold NUL.
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


async def post(session: aiohttp.ClientSession, delivery: asyncpg.Record, body: bytes,
               settings: Settings) -> tuple[int | None, str | None]:
    """POST one delivery: (status code, error); error None means delivered (2xx)."""
    url = URL(delivery["url"])
    # aiohttp skips the resolver for an IP literal: check it here.
    if ip_literal(url.host or "") is not None and not settings.callback_allow_private \
            and not is_public_text(url.host):
        return None, f"refused: {url.host} is not a public address"
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Taskservice-Delivery": str(delivery["id"])}
    if settings.callback_secrets:
        headers["X-Taskservice-Signature"] = signature(settings.callback_secrets[0], timestamp, body)
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=settings.callback_timeout_seconds)) as response:
            if 200 <= response.status < 300:
                return response.status, None
            excerpt = printable(await response.content.read(RESPONSE_EXCERPT_BYTES))
            if 300 <= response.status < 400:
                return response.status, f"HTTP {response.status}: redirects are not followed"
            return response.status, f"HTTP {response.status}: {excerpt}" if excerpt else f"HTTP {response.status}"
    except RefusedAddress as exc:
        return None, f"refused: {exc}"
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, RefusedAddress):
            return None, f"refused: {exc.os_error}"
        return None, f"{type(exc).__name__}: {exc}"
    except TimeoutError:
        return None, f"timed out after {settings.callback_timeout_seconds:g}s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Attempt:
    """One POST made: what record_attempt stores."""
    delivery: asyncpg.Record
    started_at: datetime
    duration_seconds: float
    status_code: int | None
    error: str | None  # None: delivered


async def attempt(session: aiohttp.ClientSession, delivery: asyncpg.Record, task: asyncpg.Record,
                  settings: Settings) -> Attempt:
    body = orjson.dumps(tasks.public(task), default=str)  # as GET /api/v1/tasks/{id} shows it
    started_at, started = datetime.now(UTC), time.perf_counter()
    status_code, error = await post(session, delivery, body, settings)
    return Attempt(delivery, started_at, time.perf_counter() - started, status_code, error)


async def record(conn: asyncpg.Connection, made: Attempt, settings: Settings) -> str | None:
    delivery = made.delivery
    retry_in = backoff_seconds(delivery["attempts"], settings.callback_retry_base_seconds,
                               settings.callback_retry_max_seconds)
    outcome = await record_attempt(conn, delivery["id"], delivery["attempts"], made.started_at,
                                   made.duration_seconds, made.status_code,
                                   None if made.error is None else made.error[:2000], retry_in,
                                   settings.callback_retry_hours * 3600, made.error is None)
    if outcome is not None:
        metrics.CALLBACK_DELIVERIES.labels(outcome).inc()
    if made.error is not None:
        # The host only: a URL may carry credentials or tokens.
        log.info("callback %s for task %s to %s: attempt %d %s (%s)", delivery["id"], delivery["task_id"],
                 URL(delivery["url"]).host, delivery["attempts"], outcome or "superseded", made.error[:200],
                 extra={"task_id": str(delivery["task_id"])})
    return outcome


async def deliver_once(pool: asyncpg.Pool, session: aiohttp.ClientSession, settings: Settings) -> int:
    """Claim one batch of due deliveries, POST them all at once, record the outcomes; how many
    were claimed."""
    lease = settings.callback_timeout_seconds + LEASE_MARGIN_SECONDS
    async with pool.acquire() as conn:
        due = await claim_due(conn, settings.callback_batch_size, lease)
        # A task deleted since (retention) took its delivery with it.
        found = [(delivery, task) for delivery in due
                 if (task := await tasks.get(conn, delivery["task_id"])) is not None]
    # No pool connection held through the requests: the embedded dispatcher shares the API's pool.
    made = await asyncio.gather(*(attempt(session, delivery, task, settings) for delivery, task in found))
    async with pool.acquire() as conn:
        for one in made:
            await record(conn, one, settings)
    return len(due)


def client_session(settings: Settings) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=PublicAddressResolver(settings.callback_allow_private),
                                     limit=settings.callback_batch_size)
    # trust_env stays off: a proxy from the environment would connect to addresses we never checked.
    return aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)


async def deliver_forever(pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event) -> None:
    if not settings.callback_secrets:
        log.warning("CALLBACK_SECRET is not set: completion callbacks are sent unsigned")
    async with client_session(settings) as session:
        while not stop.is_set():
            try:
                claimed = await deliver_once(pool, session, settings)
            except db.UNAVAILABLE_ERRORS as exc:
                log.warning("callbacks: database unavailable (%s)", type(exc).__name__)
                await wait_for(stop, 1.0)
                continue
            if claimed < settings.callback_batch_size:
                await wait_for(stop, settings.callback_poll_seconds)


def attempts_json(rows: Sequence[asyncpg.Record]) -> dict[str, Any]:
    """GET /api/v1/tasks/{id}/callbacks' body (without task_id): the deliveries, and every attempt."""
    deliveries: dict[UUID, dict[str, Any]] = {}
    attempts = []
    for row in rows:
        deliveries.setdefault(row["delivery_id"], {
            "id": row["delivery_id"], "task_status": row["task_status"], "url": row["url"],
            "status": row["status"], "attempts": row["attempts"],
            "next_attempt_at": row["next_attempt_at"] if row["status"] == "pending" else None,
            "created_at": row["created_at"], "finished_at": row["finished_at"]})
        if row["attempt"] is not None:
            attempts.append({"delivery_id": row["delivery_id"], "attempt": row["attempt"],
                             "at": row["started_at"], "duration_seconds": row["duration_seconds"],
                             "status_code": row["status_code"], "error": row["error"],
                             "outcome": row["outcome"]})
    return {"deliveries": list(deliveries.values()), "items": attempts}
