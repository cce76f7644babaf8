"""A closed-loop HTTP load generator: a fixed number of connections, each sending its next
request as soon as the previous answer is read, for a fixed time or a fixed number of requests.

Latency is measured per request from send to the last body byte. A closed loop slows down
with the server, so p99 is the latency a client saw at that concurrency, not a
coordinated-omission-corrected figure for a fixed arrival rate.
"""

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
from yarl import URL

# method, url, JSON body (bytes) or None
Request = tuple[str, URL, bytes | None]
JSON_HEADERS = {"Content-Type": "application/json"}


def open_session(connections: int) -> aiohttp.ClientSession:
    """One keep-alive connection per concurrent sender, never more."""
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections, ttl_dns_cache=None)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60),
                                 skip_auto_headers=("User-Agent",))


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(latencies: list[float], elapsed: float, errors: Counter) -> dict[str, Any]:
    """req/s (successful answers only) and latency figures in milliseconds."""
    ordered = sorted(latencies)
    count = len(ordered)
    return {
        "requests": count,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "seconds": round(elapsed, 3),
        "rps": round(count / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(ordered, 50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 99) * 1000, 2),
        "mean_ms": round(sum(ordered) / count * 1000, 2) if count else 0.0,
        "max_ms": round(ordered[-1] * 1000, 2) if count else 0.0,
    }


async def run_load(
    session: aiohttp.ClientSession, next_request: Callable[[int], Request], *,
    connections: int, seconds: float = math.inf, total: int | None = None, expect_status: int = 200,
    on_response: Callable[[aiohttp.ClientResponse], None] | None = None,
) -> dict[str, Any]:
    """Drive `connections` concurrent senders for `seconds`, or until `total` requests were
    sent; request n is `next_request(n)`.

    An answer with another status than `expect_status`, or a failed request, counts as an
    error and not in req/s or the latency figures.
    """
    counter = itertools.count()
    latencies: list[float] = []
    errors: Counter = Counter()
    clock = time.perf_counter
    deadline = clock() + seconds

    async def sender() -> None:
        while clock() < deadline:
            n = next(counter)
            if total is not None and n >= total:
                return
            method, url, body = next_request(n)
            started = clock()
            try:
                async with session.request(method, url, data=body,
                                           headers=JSON_HEADERS if body is not None else None) as resp:
                    await resp.read()
                    took = clock() - started
                    if resp.status != expect_status:
                        errors[f"HTTP {resp.status}"] += 1
                        continue
                    latencies.append(took)
                    if on_response is not None:
                        on_response(resp)
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1

    started = clock()
    await asyncio.gather(*(sender() for _ in range(connections)))
    return summarize(latencies, clock() - started, errors)
