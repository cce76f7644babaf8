"""Prometheus metrics: what every process counts, and the /metrics endpoint that serves them.

The metric objects live at module level on prometheus_client's default registry: that is
the library's own idiom, it is the one place a process's numbers can meet (the `run`
command serves the API's, the dispatcher's and the worker's from one /metrics), and the
default registry adds the process_* and python_* metrics for free. Nothing in the service
reads them back (only /metrics and the tests, through REGISTRY.get_sample_value), so they
cannot steer behaviour the way hidden global state would.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "taskservice_http_requests_total", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"])
HTTP_REQUEST_DURATION = Histogram(
    "taskservice_http_request_duration_seconds", "Time to answer an HTTP request, by route template and method.",
    ["route", "method"])

TASKS_CREATED = Counter(
    "taskservice_tasks_created_total", "Tasks created through the API, by priority.", ["priority"])
# from_status "none" is a task's creation. Only the transitions the code makes are counted
# (not the cancel *request* of a running task: its transition comes when the worker stops it).
TASK_TRANSITIONS = Counter(
    "taskservice_task_transitions_total", "Task status changes, by the status left and the status entered.",
    ["from_status", "to_status"])
TASK_RETRIES = Counter(
    "taskservice_task_retries_total", "Failed or timed-out attempts put back to PENDING for a retry, by kind.",
    ["kind"])
TASK_RESCUES = Counter(
    "taskservice_task_rescues_total",
    "Attempts whose lease expired, rescued by the reaper, by the status the task went to.", ["to_status"])
TASKS_REDISPATCHED = Counter(
    "taskservice_tasks_redispatched_total",
    "PENDING tasks whose message was lost (queue empty, published long ago), given a fresh outbox row.")
# `kind` stays bounded: only handlers found in the worker's registry ever run.
HANDLER_DURATION = Histogram(
    "taskservice_handler_duration_seconds",
    "Handler run time, by kind and outcome (completed, failed, timeout, cancelled).", ["kind", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
ABANDONED_THREADS = Gauge(
    "taskservice_abandoned_threads",
    "Handler threads still running after their attempt timed out or was cancelled (their results are discarded).")
EVENT_LOOP_BLOCKS = Counter(
    "taskservice_event_loop_blocks_total",
    "Times a worker's event loop was blocked for over a second, by the kind whose handler blocked it "
    "(\"none\" when no handler was running).", ["kind"])

OUTBOX_BACKLOG = Gauge(
    "taskservice_outbox_backlog", "Outbox rows due for publishing and not yet published.")
OUTBOX_OLDEST_DUE_AGE = Gauge(
    "taskservice_outbox_oldest_due_age_seconds", "How long the oldest unpublished due outbox row has been due.")
DISPATCH_BATCH_SIZE = Histogram(
    "taskservice_dispatch_batch_size", "Outbox rows published per dispatch transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000))
PUBLISH_DURATION = Histogram(
    "taskservice_publish_duration_seconds", "Time to publish a batch until RabbitMQ confirmed every message.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PUBLISH_FAILURES = Counter(
    "taskservice_publish_failures_total",
    "Dispatch batches RabbitMQ did not confirm (their rows come due again shortly).")

CALLBACK_DELIVERIES = Counter(
    "taskservice_callback_deliveries_total",
    "Callback attempts, by outcome: delivered (2xx), retry (due again later), failed (out of retry time).",
    ["outcome"])


def count_transition(from_status: str | None, to_status: str, amount: int = 1) -> None:
    TASK_TRANSITIONS.labels(from_status or "none", to_status).inc(amount)


async def serve_metrics(request: web.Request) -> web.Response:
    """GET /metrics in Prometheus' text exposition format."""
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


@asynccontextmanager
async def metrics_server(host: str, port: int) -> AsyncIterator[None]:
    """Serve /metrics on `port` for a process without an API (dispatcher, worker); 0 = don't."""
    if not port:
        yield
        return
    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("metrics on http://%s:%d/metrics", host, port)
        yield
    finally:
        await runner.cleanup()
