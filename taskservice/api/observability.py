"""What the API tells its operators: request ids, the access log, HTTP metrics and /metrics."""

import asyncio
import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp_apispec import docs

from taskservice import metrics
from taskservice.logs import log_context

access_log = logging.getLogger("taskservice.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is kept only when short and visible ASCII: it goes into log lines and a header.
REQUEST_ID_PATTERN = re.compile(r"[!-~]{1,128}")
# Any other method token a client sends is counted as "other": labels must stay few.
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def request_id(request: web.Request) -> str:
    """The client's X-Request-ID when usable, else a fresh one."""
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    return sent if REQUEST_ID_PATTERN.fullmatch(sent) else uuid.uuid4().hex


def route_template(request: web.Request) -> str:
    """The matched route's template ("/api/v1/tasks/{task_id}"): raw paths hold ids, a series each."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def access_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Outermost: tags every log line of the request with its id, then logs and counts the answer."""
    rid = request_id(request)
    started = time.perf_counter()
    status = 500  # unless an answer comes back: an exception past the problem middleware
    with log_context(request_id=rid):
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = rid
            return response
        except web.HTTPException as exc:  # redirects, which the problem middleware lets through
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = rid
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away before the answer (nginx's code for it)
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(request)
            method = request.method if request.method in KNOWN_METHODS else "other"
            metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
            metrics.HTTP_REQUEST_DURATION.labels(route, method).observe(elapsed)
            # Never headers or bodies: they can carry credentials and personal data. The path
            # as sent (still percent-encoded), so a %0A in it cannot forge a log line.
            path = request.rel_url.raw_path
            access_log.info("%s %s %d %.1fms", request.method, path, status, elapsed * 1000,
                            extra={"method": request.method, "path": path, "status": status,
                                   "duration_ms": round(elapsed * 1000, 3)})


@docs(tags=["health"], summary="Prometheus metrics",
      description="Counters, gauges and histograms of this process in Prometheus' text exposition format.",
      responses={200: {"description": "The metrics",
                       "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def get_metrics(request: web.Request) -> web.Response:
    return await metrics.serve_metrics(request)


def add_metrics_route(app: web.Application) -> None:
    app.router.add_get("/metrics", get_metrics, allow_head=False)
