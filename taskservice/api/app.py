"""The aiohttp application: middlewares, routes, the OpenAPI document and resource lifetimes."""

from typing import AsyncIterator

import orjson
from aiohttp import web
from aiohttp_apispec import setup_aiohttp_apispec, validation_middleware
from marshmallow import ValidationError
from webargs import core
from webargs.aiohttpparser import AIOHTTPParser

from taskservice import __version__, db
from taskservice.api import schemas
from taskservice.api.keys import POOL, SETTINGS
from taskservice.api.problems import Problem, problem_middleware, validation_problem
from taskservice.api.routes import add_routes
from taskservice.settings import Settings


def raise_validation_problem(error: ValidationError, req, schema, **_) -> None:
    # webargs nests messages under the location ({"json": {...}}); clients want fields.
    messages = error.messages
    if isinstance(messages, dict) and len(messages) == 1:
        messages = next(iter(messages.values()))
    if not isinstance(messages, dict):
        messages = {"_schema": messages}
    raise validation_problem(messages)


class RequestParser(AIOHTTPParser):
    """webargs' parser with the API's rules for bodies: JSON only, parsed by orjson."""

    async def load_json(self, req: web.Request, schema):
        if not req.body_exists:
            return core.missing
        if not core.is_json(req.content_type):
            raise Problem(415, f"Send the body as application/json, not {req.content_type}.")
        body = await req.read()  # aiohttp enforces client_max_size here (413)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Problem(400, f"The body is not valid JSON: {exc}.") from None


async def database_pool(app: web.Application) -> AsyncIterator[None]:
    # Custom plans for every call: the list query's optional filters would
    # otherwise get a generic plan that ignores the indexes (design §10).
    pool = await db.create_pool(app[SETTINGS], plan_cache_mode="force_custom_plan")
    app[POOL] = pool
    yield
    await pool.close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[problem_middleware, validation_middleware],
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(database_pool)
    add_routes(app)
    api_spec = setup_aiohttp_apispec(
        app, title="taskservice", version=__version__, openapi_version="3.0.3",
        url="/api/docs/swagger.json", swagger_path="/docs", static_path="/static/swagger",
        info={"description": "Asynchronous task management: create, watch and cancel tasks."},
    )
    api_spec.spec.components.schema("Problem", schema=schemas.ProblemSchema)
    app["_apispec_parser"] = RequestParser(error_handler=raise_validation_problem)
    return app
