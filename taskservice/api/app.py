"""The aiohttp application: middlewares, routes, the OpenAPI document and resource lifetimes."""

import asyncio
import dataclasses
import functools
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp_apispec import AiohttpApiSpec, validation_middleware
from marshmallow import ValidationError
from webargs.aiohttpparser import AIOHTTPParser

from taskservice import __version__, db, events, outbox, wakeups
from taskservice.api import bodies, creates, schemas
from taskservice.api.auth import auth_middleware, document_security
from taskservice.api.dashboard import add_dashboard_routes
from taskservice.api.event_feed import event_feed
from taskservice.api.keys import (
    CAPPED_SEARCHES,
    CREATES,
    EVENTS_COMMITTED,
    HANDOFF,
    KINDS,
    LIST_POOL,
    OUTBOX_WAKEUP,
    POOL,
    PROCESS_ID,
    SEARCH_KEYS,
    SETTINGS,
)
from taskservice.api.memo import Memo
from taskservice.api.observability import access_middleware, add_metrics_route
from taskservice.api.problems import problem_middleware, validation_problem
from taskservice.api.queue_probe import queue_probe
from taskservice.api.routes import add_routes
from taskservice.api.schedules import add_schedule_routes
from taskservice.api.status_waits import release_waiters
from taskservice.api.stream import end_streams
from taskservice.dispatcher import run_dispatcher
from taskservice.handlers import load_registry
from taskservice.handoff import Handoff
from taskservice.settings import Settings

# aiohttp's default: how long an answered request's unsent body may still be read and dropped.
LINGERING_SECONDS = 10.0


def raise_validation_problem(error: ValidationError, req, schema, **_) -> None:
    # webargs nests messages under the location ({"json": {...}}); clients want fields.
    messages = error.messages
    if isinstance(messages, dict) and len(messages) == 1:
        messages = next(iter(messages.values()))
    if not isinstance(messages, dict):
        messages = {"_schema": messages}
    raise validation_problem(messages)


class RequestParser(AIOHTTPParser):
    """webargs' parser with the API's rules for bodies (taskservice.api.bodies)."""

    async def load_json(self, req: web.Request, schema):
        return await bodies.read_json(req, req.app[SETTINGS])


@web.middleware
async def missing_static_files(request: web.Request, handler) -> web.StreamResponse:
    """A static file that is not there is a 404 now: aiohttp would only find out while sending,
    after the middlewares have logged and counted a 200, and send an empty body."""
    response = await handler(request)
    resource = request.match_info.route.resource
    if isinstance(response, web.FileResponse) and isinstance(resource, web.StaticResource):
        path = Path(resource.get_info()["directory"], request.match_info["filename"])
        if not await asyncio.to_thread(path.is_file):
            raise web.HTTPNotFound()
    return response


async def database_pools(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # PostgreSQL's plan cache for most statements: planning every create afresh cost a third of
    # the create throughput (bench/README.md). No parallel scans: on a small machine they only
    # add contention between requests.
    pool = await db.create_pool(settings, max_parallel_workers_per_gather="0")
    # The list's and the stream replay's optional filters would get a generic plan that ignores
    # the indexes (docs/design.md, Known pitfalls): their own pool plans every call.
    list_max = max(1, settings.db_pool_max // 2)
    list_settings = dataclasses.replace(settings, db_pool_min=min(settings.db_pool_min, list_max),
                                        db_pool_max=list_max)
    try:
        list_pool = await db.create_pool(list_settings, plan_cache_mode="force_custom_plan",
                                         max_parallel_workers_per_gather="0")
    except BaseException:
        await pool.close()
        raise
    app[POOL], app[LIST_POOL] = pool, list_pool
    app[CREATES] = creates.batcher(pool, app[HANDOFF])
    yield
    await asyncio.gather(pool.close(), list_pool.close())


def finish_openapi3(spec: dict) -> dict:
    """Turn the Swagger 2 leftovers of aiohttp-apispec's OpenAPI 3 output into OpenAPI 3."""
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation.pop("produces", None)  # Swagger 2 only; OpenAPI 3 names types per response
            body = [p for p in operation["parameters"] if p["in"] == "body"]
            if body:
                operation["parameters"] = [p for p in operation["parameters"] if p["in"] != "body"]
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": body[0]["schema"]}},
                }
    return spec


def document_body_rules(spec: dict, settings: Settings) -> dict:
    """State on every operation that takes a body the limits taskservice.api.bodies enforces."""
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            if "requestBody" in operation:
                operation["requestBody"]["x-max-bytes"] = bodies.max_body_bytes(path, settings)
                operation["responses"].setdefault("408", {
                    "description": f"The body did not arrive within {settings.request_body_timeout_seconds:g} s",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
                })
    return spec


async def after_commit_wakeups(app: web.Application) -> AsyncIterator[None]:
    """Background tasks that turn OUTBOX_WAKEUP into NOTIFY outbox_due and EVENTS_COMMITTED into
    the status streams' announcement, each paced (taskservice.wakeups)."""
    sender = app[PROCESS_ID]

    async def wake_dispatchers(conn, _completed) -> None:
        await outbox.notify_due(conn, sender)

    async with (wakeups.sending("outbox wake-ups", app[POOL], wake_dispatchers) as outbox_wakeup,
                wakeups.sending("stream announcements", app[POOL],
                                functools.partial(events.announce, sender=sender)) as events_committed):
        app[OUTBOX_WAKEUP], app[EVENTS_COMMITTED] = outbox_wakeup, events_committed
        yield


async def embedded_dispatcher(app: web.Application) -> AsyncIterator[None]:
    """The dispatcher as a background task of the API process, unless disabled."""
    settings = app[SETTINGS]
    if not settings.dispatcher_embedded:
        yield
        return
    stop, wake = asyncio.Event(), asyncio.Event()

    def wake_dispatcher(_committed_at: float) -> None:
        wake.set()

    # Woken by the API's own creates at once; the NOTIFY they also send is for other dispatchers.
    app[OUTBOX_WAKEUP].local.append(wake_dispatcher)
    task = asyncio.create_task(run_dispatcher(app[POOL], settings, app[EVENTS_COMMITTED], stop, wake,
                                              own_id=app[PROCESS_ID], handoff=app[HANDOFF]))
    yield
    app[OUTBOX_WAKEUP].local.remove(wake_dispatcher)
    stop.set()
    await task


EVENT_STREAM = "text/event-stream"


def streams_events(handler) -> bool:
    """Whether the handler's documented 200 is an event stream (a body that never ends)."""
    ok = getattr(handler, "__apispec__", {}).get("responses", {}).get(200, {})
    return EVENT_STREAM in ok.get("content", {})


def event_stream_head(get_handler):
    """HEAD of an event stream: the stream's headers at once, after the same validation as its GET."""
    async def head(request: web.Request) -> web.Response:
        return web.Response(headers={"Content-Type": EVENT_STREAM, "Cache-Control": "no-cache"})

    head.__schemas__ = get_handler.__schemas__  # read by aiohttp-apispec's validation middleware
    return head


def answer_head_like_get(app: web.Application) -> None:
    """HEAD wherever GET answers (uptime checkers use it): the GET handler, whose body aiohttp
    leaves out. Added once the spec is built, so HEAD is not documented as an operation of its own."""
    for resource in app.router.resources():
        methods = {route.method: route.handler for route in resource}
        if "GET" in methods and "HEAD" not in methods:
            get_handler = methods["GET"]
            resource.add_route("HEAD", event_stream_head(get_handler) if streams_events(get_handler)
                               else get_handler)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        # access first: its log line and metrics see the final answer, problem+json included.
        # auth before validation: a request without a valid key learns nothing about its input.
        middlewares=[access_middleware, problem_middleware, auth_middleware(settings),
                     validation_middleware, missing_static_files],
        handler_args={
            # A connection gets this long for a request's headers, from its opening or its previous
            # answer: a slow client and an idle keep-alive one both hold a connection without a request.
            "keepalive_timeout": settings.request_header_timeout_seconds,
            # An answered request's unread body is read and dropped for at most this long, then the
            # connection closes: its client had REQUEST_BODY_TIMEOUT_SECONDS in all to send it.
            "lingering_time": min(LINGERING_SECONDS, settings.request_body_timeout_seconds),
            # Bodies are decoded by taskservice.api.bodies, which answers an undecodable one with 400.
            "auto_decompress": False,
        },
    )
    app[SETTINGS] = settings
    app[PROCESS_ID] = uuid.uuid4().hex
    app[SEARCH_KEYS], app[CAPPED_SEARCHES] = Memo(), Memo()
    app[HANDOFF] = Handoff()  # opened by the embedded dispatcher, if any, while it publishes
    # The same modules as the workers', for the kinds' defaults and payload schemas (HandlerModuleError
    # if one cannot be imported here: the API then stops with one line, as a worker does).
    app[KINDS] = load_registry(settings.handler_modules)
    app.cleanup_ctx.append(database_pools)
    app.cleanup_ctx.append(after_commit_wakeups)
    app.cleanup_ctx.append(embedded_dispatcher)
    app.cleanup_ctx.append(event_feed)
    app.cleanup_ctx.append(queue_probe)
    app.on_shutdown.append(release_waiters)
    app.on_shutdown.append(end_streams)
    add_routes(app)
    add_schedule_routes(app)
    add_metrics_route(app)
    add_dashboard_routes(app)
    api_spec = AiohttpApiSpec(
        title="taskservice", version=__version__, openapi_version="3.0.3",
        url="/api/docs/swagger.json", swagger_path="/docs", static_path="/static/swagger",
        info={"description": "Asynchronous task management: create, watch and cancel tasks."},
    )
    # Named up front: routes.problem_doc and routes.task_doc refer to them by name.
    api_spec.spec.components.schema("Problem", schema=schemas.ProblemSchema)
    api_spec.spec.components.schema("Task", schema=schemas.TaskSchema)
    api_spec.spec.components.schema("TaskBatch", schema=schemas.TaskBatchSchema)
    api_spec.spec.components.schema("Schedule", schema=schemas.ScheduleSchema)
    # aiohttp-apispec keeps its state under plain string keys, which aiohttp warns about.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        # In place (the routes are all added): the spec is built now, so it can be finished below.
        api_spec.register(app, in_place=True)
        app["swagger_dict"] = document_body_rules(
            document_security(finish_openapi3(app["swagger_dict"]), settings), settings)
        app["_apispec_parser"] = RequestParser(error_handler=raise_validation_problem)
    answer_head_like_get(app)
    return app
