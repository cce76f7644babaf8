"""RFC 9457 problem details: every error the API returns, in one shape."""

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from taskservice.db import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

# RFC 9110's names, whatever the running Python's http module calls them.
TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


class Problem(Exception):
    """Raised by handlers to answer with a problem+json error."""

    def __init__(self, status: int, detail: str, *, errors: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers


def problem_response(problem: Problem) -> web.Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(problem.status) or HTTPStatus(problem.status).phrase,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    return web.Response(status=problem.status, body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
                        content_type=PROBLEM_CONTENT_TYPE, headers=problem.headers)


def flatten_errors(errors: Any, path: str = "") -> dict[str, list[str]]:
    """Marshmallow's messages as field → list of messages. Errors inside a list or a nested
    object are keyed by their dotted path (`status.1` for the second `status` value,
    `tasks.3.name`), so every value is a flat list of strings; errors about the whole
    input (not a field) are under `_schema`."""
    if isinstance(errors, Mapping):
        flat: dict[str, list[str]] = {}
        for key, inner in errors.items():
            for field, messages in flatten_errors(inner, f"{path}.{key}" if path else str(key)).items():
                flat.setdefault(field, []).extend(messages)
        return flat
    if isinstance(errors, list | tuple):
        flat = {}
        for item in errors:
            for field, messages in flatten_errors(item, path).items():
                flat.setdefault(field, []).extend(messages)
        return flat
    return {path or "_schema": [str(errors)]}


def describe_errors(errors: Mapping[str, list[str]]) -> str:
    """One sentence naming each invalid field, for clients that read only `detail`."""
    return "Invalid request. " + "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())


def validation_problem(errors: Any) -> Problem:
    """422 with `errors` as field → list of messages, whatever shape the validator reported."""
    flat = flatten_errors(errors)
    return Problem(422, describe_errors(flat), errors=flat)


# aiohttp's own errors (unknown route, wrong method, body too large) keep their
# status and headers (Allow, ...), in problem+json.
def _from_http_exception(exc: web.HTTPException) -> Problem:
    detail = exc.text or exc.reason
    if detail.startswith(f"{exc.status}: "):
        detail = detail[len(f"{exc.status}: "):]
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return Problem(exc.status, detail, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(_from_http_exception(exc))
    except UNAVAILABLE_ERRORS as exc:
        log.warning("database unavailable during %s %s: %s", request.method, request.path,
                    type(exc).__name__)
        return problem_response(Problem(503, "The database is unavailable; try again shortly.",
                                        headers={"Retry-After": "1"}))
    except Exception:
        log.exception("unhandled error during %s %s", request.method, request.path)
        return problem_response(Problem(500, "An internal error occurred."))
