"""Route handlers: validate (via the schemas), call one function per query, shape the answer."""

import asyncio
import hashlib
from collections import Counter
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web
from aiohttp_apispec import (
    docs,
    headers_schema,
    match_info_schema,
    querystring_schema,
    request_schema,
    response_schema,
)
from marshmallow import ValidationError

from taskservice import batches, callbacks, db, dependencies, events, limits, metrics, outbox, tasks
from taskservice.api import kinds, schemas
from taskservice.api.event_feed import EVENT_FEED
from taskservice.api.keys import (
    CAPPED_SEARCHES,
    CREATES,
    EVENTS_COMMITTED,
    KINDS,
    LIST_POOL,
    OUTBOX_WAKEUP,
    POOL,
    SEARCH_KEYS,
    SETTINGS,
)
from taskservice.api.problems import Problem, validation_problem
from taskservice.api.queue_probe import QUEUE_PROBE, queue_depths
from taskservice.api.status_waits import wait_for_change
from taskservice.api.stream import Subscriber, serve_stream
from taskservice.kinds import Kind
from taskservice.settings import Settings

TASK_NOT_FOUND = "Task not found"  # the replaced service's exact words; clients compare them


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    # default=str: asyncpg's own UUID type, which orjson does not know.
    return web.Response(body=orjson.dumps(body, default=str), status=status, headers=headers,
                        content_type="application/json")


def problem_doc(description: str) -> dict:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def task_doc(description: str, **extra: Any) -> dict:
    return {"description": description, **extra,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Task"}}}}


INVALID = problem_doc("Invalid input; `errors` names each field")
NOT_FOUND = problem_doc("No task has this id")
UNAVAILABLE = problem_doc("The database is unavailable")


def request_fingerprint(fields: dict[str, Any]) -> str:
    """Stable hash of a create request, to tell a retry from a different request."""
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def create_or_replay(conn, fields: dict[str, Any], key: str | None, request_hash: str | None,
                           ttl_seconds: float) -> tuple[Any, bool]:
    """(task, True) for a new task; (task, False) for the task an unexpired key already names."""
    for _ in range(3):
        row = await tasks.create(conn, **fields, idempotency_key=key, request_hash=request_hash)
        if row is not None:
            return row, True
        row = await tasks.get_by_idempotency_key(conn, key, ttl_seconds)
        if row is not None:
            return row, False
        # The key's task is older than the TTL, or a racing request just freed it: free
        # it (a no-op if done already) and create again. The unique index still lets only
        # one of any racing requests win; the others replay the winner's task.
        await tasks.release_idempotency_key(conn, key, ttl_seconds)
    raise Problem(409, "This Idempotency-Key is being reused by concurrent requests; try again.")


def task_fields(body: dict[str, Any], registry: Mapping[str, Kind], settings: Settings) -> dict[str, Any]:
    """A create body as tasks.create takes it: kind, priority, max_attempts, timeout_seconds and queue
    as sent, else the kind's defaults, else the global ones. ValidationError keyed like the body."""
    return {
        "name": body["name"],
        "description": body["description"],
        "payload": body["payload"],
        "run_at": body["run_at"],
        **kinds.create_fields(body, registry, settings),
        # Only when set, so that fingerprints of earlier creates without one stay valid.
        **({"callback_url": body["callback_url"]} if body.get("callback_url") is not None else {}),
        **({"depends_on": body["depends_on"]} if body.get("depends_on") else {}),
        **({"ref": body["ref"]} if body.get("ref") is not None else {}),
    }


def create_arguments(fields: dict[str, Any], waiting_on: int = 0) -> dict[str, Any]:
    """task_fields as tasks.create takes them: the parents are linked afterwards."""
    return {**{k: v for k, v in fields.items() if k not in ("depends_on", "ref")}, "waiting_on": waiting_on}


def batch_parents(items: list[dict[str, Any]]) -> list[list[UUID | int]]:
    """Each item's distinct parents: a task id, or the position of an earlier item its `ref` names.
    ValidationError keyed `tasks.<i>.depends_on`."""
    refs = {item["ref"]: i for i, item in enumerate(items) if "ref" in item}
    parents, errors = [], {}
    for i, item in enumerate(items):
        mine: list[UUID | int] = []
        for name in item.get("depends_on", []):
            if name in refs:
                if refs[name] >= i:
                    errors[f"{i}.depends_on"] = [f"{name!r} is the ref of tasks.{refs[name]}, not an earlier item."]
                    continue
                parent: UUID | int = refs[name]
            else:
                try:
                    parent = UUID(name)
                except ValueError:
                    errors[f"{i}.depends_on"] = [f"{name!r} is neither a task id nor the ref of an earlier item."]
                    continue
            if parent not in mine:
                mine.append(parent)
        parents.append(mine)
    if errors:
        raise ValidationError({"tasks": errors})
    return parents


async def refuse_callback_urls(items: Mapping[str, dict[str, Any]], settings: Settings) -> None:
    """A 422 naming each item's callback_url (keyed by its field path) whose host is not allowed,
    as resolved now. Each distinct URL is checked once: a batch's items usually share one."""
    urls = {fields["callback_url"] for fields in items.values() if fields.get("callback_url") is not None}
    refusals = {url: await callbacks.refusal(url, settings.callback_allow_private) for url in urls}
    errors = {path: [refusals[fields["callback_url"]]] for path, fields in items.items()
              if refusals.get(fields.get("callback_url"))}
    if errors:
        raise validation_problem(errors)


@docs(tags=["tasks"], summary="Create a task",
      responses={201: task_doc("Created", headers={"Location": {
                     "description": "The new task's URL", "schema": {"type": "string"}}}),
                 200: task_doc("Replay of an earlier create with the same Idempotency-Key"),
                 409: problem_doc("Idempotency-Key already used with a different body"),
                 413: problem_doc("Body too large"), 415: problem_doc("Body is not JSON"),
                 400: problem_doc("Body is not valid JSON"), 422: INVALID, 503: UNAVAILABLE})
@request_schema(schemas.TaskCreateSchema, put_into="body")
@headers_schema(schemas.IdempotencyHeadersSchema, put_into="headers")
async def create_task(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    key = request["headers"].get("idempotency_key")
    try:
        fields = task_fields(request["body"], request.app[KINDS], settings)
    except ValidationError as exc:
        raise validation_problem(exc.messages) from None
    await refuse_callback_urls({"callback_url": fields}, settings)
    request_hash = request_fingerprint(fields) if key else None
    parents = list(dict.fromkeys(fields.get("depends_on", [])))
    if not parents:
        row = await request.app[CREATES].submit((create_arguments(fields), key, request_hash))
        created = row is not None
        if not created:  # its idempotency key is taken: replay (or free an expired key)
            async with request.app[POOL].acquire() as conn:
                row, created = await create_or_replay(conn, create_arguments(fields), key, request_hash,
                                                      settings.idempotency_ttl_seconds)
    else:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            row, created = await create_or_replay(conn, create_arguments(fields, len(parents)), key,
                                                  request_hash, settings.idempotency_ttl_seconds)
            if created:
                missing = set(await dependencies.link(conn, [row["id"]] * len(parents), parents))
                if missing:  # raised inside the transaction: nothing is written
                    raise validation_problem({f"depends_on.{i}": ["No task has this id."]
                                              for i, parent in enumerate(fields["depends_on"])
                                              if parent in missing})
            row = await tasks.get(conn, row["id"])  # as linking left it: waiting, due or CANCELLED
    if not created:
        if row["request_hash"] != request_hash:
            raise Problem(409, "This Idempotency-Key was already used with a different request.")
        return json_response(tasks.public(row))
    if not row.get("leased"):  # (a leased row is with this process's dispatcher already)
        request.app[OUTBOX_WAKEUP].set()
    request.app[EVENTS_COMMITTED].soon()  # NEW: announced with PENDING, usually
    metrics.TASKS_CREATED.labels(row["priority"]).inc()
    metrics.count_transition(None, "NEW")
    location = f"/api/v1/tasks/{row['id']}"
    return json_response(tasks.public(row), status=201, headers={"Location": location})


async def claim_batch_key(conn, key: str, request_hash: str, ttl_seconds: float) -> tuple[Any, bool]:
    """(batch, True) for a key this batch now holds; (batch, False) for the batch an unexpired key
    already names. Racing requests wait on the first one's claim, then find its batch."""
    for _ in range(3):
        batch = await batches.claim_idempotency_key(conn, key, request_hash)
        if batch is not None:
            return batch, True
        batch = await batches.get_by_idempotency_key(conn, key, ttl_seconds)
        if batch is not None:
            return batch, False
        await batches.release_idempotency_key(conn, key, ttl_seconds)  # expired: free it, claim again
    raise Problem(409, "This Idempotency-Key is being reused by concurrent requests; try again.")


async def create_many_or_replay(conn, items: list[dict[str, Any]], keys: list[str | None],
                                hashes: list[str | None], ttl_seconds: float) -> tuple[list, list[bool]]:
    """The batch's tasks in request order, and for each whether it is new: an item whose own
    idempotency key names an unexpired task gets that task (409 if it came from another body)."""
    if any(keys):
        await tasks.release_idempotency_keys(conn, [k for k in keys if k is not None], ttl_seconds)
    rows = await tasks.create_many(conn, items, keys, hashes)
    created = [row is not None for row in rows]
    taken = [i for i, row in enumerate(rows) if row is None]
    if taken:
        holders = {row["idempotency_key"]: row
                   for row in await tasks.get_by_idempotency_keys(conn, [keys[i] for i in taken], ttl_seconds)}
        racing = [f"tasks.{i}" for i in taken if keys[i] not in holders]
        if racing:
            raise Problem(409, f"The idempotency_key of {', '.join(racing)} is being reused by concurrent "
                               "requests; try again.")
        reused = [f"tasks.{i}" for i in taken if holders[keys[i]]["request_hash"] != hashes[i]]
        if reused:
            raise Problem(409, f"The idempotency_key of {', '.join(reused)} was already used with a "
                               "different request.")
        for i in taken:
            rows[i] = holders[keys[i]]
    return rows, created


async def link_batch(conn, rows: list, created: list[bool], parents: list[list[UUID | int]]) -> None:
    """Link the batch's new tasks to their parents (ids, or earlier items by position); a 422 naming
    each unknown id, raised inside the batch's transaction."""
    links = [(row["id"], parent if isinstance(parent, UUID) else rows[parent]["id"])
             for row, is_new, mine in zip(rows, created, parents, strict=True) if is_new for parent in mine]
    if not links:
        return
    missing = set(await dependencies.link(conn, [child for child, _ in links], [parent for _, parent in links]))
    if missing:
        raise validation_problem({f"tasks.{i}.depends_on": [f"No task has the id {parent}."]
                                  for i, mine in enumerate(parents) for parent in mine if parent in missing})


@docs(tags=["tasks"], summary="Create many tasks at once, all or none",
      description="Each item is a create body (plus an optional `idempotency_key`); 422 names an invalid "
                  "item's field by position (`tasks.3.name`) and nothing is written. The tasks are "
                  "written in one transaction. An Idempotency-Key header covers the whole batch: a retry "
                  "with the same key and body gets the same tasks (200), another body 409.",
      responses={200: {"description": "Replay of an earlier batch with the same Idempotency-Key",
                       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskBatch"}}}},
                 409: problem_doc("Idempotency-Key (or an item's idempotency_key) already used with a "
                                  "different body"),
                 413: problem_doc("Body too large"), 415: problem_doc("Body is not JSON"),
                 400: problem_doc("Body is not valid JSON"), 422: INVALID, 503: UNAVAILABLE})
@request_schema(schemas.TaskBatchCreateSchema, put_into="body")
@headers_schema(schemas.IdempotencyHeadersSchema, put_into="headers")
@response_schema(schemas.TaskBatchSchema, 201, description="Created: the tasks in request order")
async def create_task_batch(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body_items = request["body"]["tasks"]
    if len(body_items) > settings.batch_max_tasks:
        raise validation_problem({"tasks": [f"Must hold at most {settings.batch_max_tasks} tasks."]})
    items, errors = [], {}
    for i, item in enumerate(body_items):
        try:
            items.append(task_fields(item, request.app[KINDS], settings))
        except ValidationError as exc:
            errors[str(i)] = exc.messages
    if errors:
        raise validation_problem({"tasks": errors})
    try:
        parents = batch_parents(items)
    except ValidationError as exc:
        raise validation_problem(exc.messages) from None
    await refuse_callback_urls({f"tasks.{i}.callback_url": fields for i, fields in enumerate(items)}, settings)
    keys = [item["idempotency_key"] for item in body_items]
    hashes = [request_fingerprint(fields) if k else None for fields, k in zip(items, keys, strict=True)]
    key = request["headers"].get("idempotency_key")
    request_hash = request_fingerprint({"tasks": [{**fields, "idempotency_key": k}
                                                  for fields, k in zip(items, keys, strict=True)]}) if key else None
    ttl_seconds = settings.idempotency_ttl_seconds
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await tasks.plan_each_execution(conn)  # a batch's many foreign-key checks, for the table as it is
        batch = None
        if key is not None:
            batch, claimed = await claim_batch_key(conn, key, request_hash, ttl_seconds)
            if not claimed:
                if batch["request_hash"] != request_hash:
                    raise Problem(409, "This Idempotency-Key was already used with a different request.")
                rows = await tasks.get_many(conn, batch["task_ids"])
                return json_response({"items": [tasks.public(row) for row in rows]})
        rows, created = await create_many_or_replay(
            conn, [create_arguments(fields, len(mine)) for fields, mine in zip(items, parents, strict=True)],
            keys, hashes, ttl_seconds)
        if any(parents) or not all(created):
            await link_batch(conn, rows, created, parents)
            rows = await tasks.get_many(conn, [row["id"] for row in rows])  # as linking left them
        if batch is not None:
            await batches.record_tasks(conn, batch["id"], [row["id"] for row in rows])
    if any(created):
        request.app[OUTBOX_WAKEUP].set()
        request.app[EVENTS_COMMITTED].soon()
    by_priority = Counter(row["priority"] for row, is_new in zip(rows, created, strict=True) if is_new)
    for priority, count in by_priority.items():
        metrics.TASKS_CREATED.labels(priority).inc(count)
    metrics.count_transition(None, "NEW", by_priority.total())
    return json_response({"items": [tasks.public(row) for row in rows]}, status=201)


@docs(tags=["tasks"], summary="List tasks, newest first",
      responses={422: INVALID, 503: UNAVAILABLE})
@querystring_schema(schemas.TaskListQuerySchema, put_into="query")
@response_schema(schemas.TaskPageSchema, 200, description="One page of matching tasks")
async def list_tasks(request: web.Request) -> web.Response:
    query = request["query"]
    filters = {"statuses": query.get("status") or None, "priorities": query.get("priority") or None}
    search, queues = query.get("search") or None, query.get("queue") or None
    schedule_id = query.get("schedule_id")
    waiting = query.get("waiting")
    if waiting is not None and search is not None:
        raise validation_problem({"waiting": ["Cannot be combined with search."]})
    page, page_size = query["page"], query["page_size"]
    count_limit = request.app[SETTINGS].search_count_limit
    offset = (page - 1) * page_size
    async with request.app[LIST_POOL].acquire() as conn:
        more = {"queues": queues, "schedule_id": schedule_id}
        if search is not None:
            remembered = request.app[SEARCH_KEYS].get(search)
            if remembered is None:
                remembered = await tasks.search_key(conn, search)
                request.app[SEARCH_KEYS].put(search, remembered)
            key, common = remembered
            rows = await tasks.search_page(conn, **filters, **more, search=search, key=key, limit=page_size,
                                           offset=offset, newest_rows=tasks.SEARCH_NEWEST_ROWS if common else 0)
        else:
            rows = await tasks.list_page(conn, **filters, **more, waiting=waiting, limit=page_size, offset=offset)
        capped = search is not None or queues is not None or schedule_id is not None or waiting is not None
        if not capped:
            total = await tasks.count(conn, **filters)
        elif rows and len(rows) < page_size:
            total = offset + len(rows)  # the last page: the matches end here
        elif search is not None and rows and rows[0]["matched"] is not None:
            total = rows[0]["matched"]  # the index's branch counted every match as it sorted them
        elif search is not None:
            total = await search_total(request.app, conn, rows, filters, more, search, key, count_limit)
        else:
            total = await tasks.count_matching(conn, **filters, **more, waiting=waiting, limit=count_limit + 1)
    # The counters keep no text, queue, schedule or waiting: past the limit such a filter
    # reports `total` = limit and `total_exact` = false.
    total, exact = (min(total, count_limit), total <= count_limit) if capped else (total, True)
    return json_response({"items": [tasks.public(r) for r in rows], "total": total,
                          "total_exact": exact, "page": page, "page_size": page_size})


async def search_total(app: web.Application, conn, rows, filters: dict[str, Any], more: dict[str, Any],
                       search: str, key: str, count_limit: int) -> int:
    """How many tasks the search matches, counted up to count_limit + 1. A search without a
    status or schedule filter found to match more is not counted again for a while (api/memo.py
    says why)."""
    capped_key = None if filters["statuses"] is not None or more["schedule_id"] is not None else (
        search, tuple(filters["priorities"] or ()), tuple(more["queues"] or ()))
    if capped_key is not None and app[CAPPED_SEARCHES].get(capped_key):
        return count_limit + 1
    total = await tasks.search_count(conn, **filters, **more, search=search, key=key, limit=count_limit + 1,
                                     since=tasks.search_count_since(rows, count_limit + 1))
    if capped_key is not None and total > count_limit:
        app[CAPPED_SEARCHES].put(capped_key, True)
    return total


async def _task_or_404(request: web.Request):
    async with request.app[POOL].acquire() as conn:
        row = await tasks.get(conn, request["path"]["task_id"])
    if row is None:
        raise Problem(404, TASK_NOT_FOUND)
    return row


@docs(tags=["tasks"], summary="Get a task", responses={404: NOT_FOUND, 422: INVALID, 503: UNAVAILABLE})
@match_info_schema(schemas.TaskIdPathSchema, put_into="path")
@response_schema(schemas.TaskSchema, 200, description="The task")
async def get_task(request: web.Request) -> web.Response:
    return json_response(tasks.public(await _task_or_404(request)))


@docs(tags=["tasks"], summary="Get a task's status, or wait for it to change",
      description="With `since` and `wait`, answers once the status differs from `since`, or after "
                  "`wait` seconds with the status then (200 either way): one request can wait for "
                  "a task to start or finish.",
      responses={404: NOT_FOUND, 422: INVALID, 503: UNAVAILABLE})
@match_info_schema(schemas.TaskIdPathSchema, put_into="path")
@querystring_schema(schemas.TaskStatusQuerySchema, put_into="query")
@response_schema(schemas.TaskStatusSchema, 200, description="The task's status")
async def get_task_status(request: web.Request) -> web.Response:
    task_id = request["path"]["task_id"]
    since, wait = request["query"].get("since"), request["query"].get("wait", 0)
    if since is not None and wait > 0:
        status = await wait_for_change(request.app[POOL], request.app[EVENT_FEED], task_id, since, wait)
    else:
        async with request.app[POOL].acquire() as conn:
            status = await tasks.get_status(conn, task_id)
    if status is None:
        raise Problem(404, TASK_NOT_FOUND)
    return json_response({"task_id": task_id, "status": status})


@docs(tags=["tasks"], summary="Retry a failed or cancelled task",
      description="A FAILED or CANCELLED task goes back to PENDING with a fresh attempt budget "
                  "(`attempts` 0; `result`, `error`, `finished_at` and `cancel_requested_at` cleared) "
                  "and is dispatched again; one still waiting on parents goes back to NEW instead. The "
                  "descendants its failure cancelled (not those a client cancelled) wait again. Any "
                  "other status is a conflict (409).",
      responses={404: NOT_FOUND, 409: problem_doc("The task is neither FAILED nor CANCELLED"),
                 422: INVALID, 503: UNAVAILABLE})
@match_info_schema(schemas.TaskIdPathSchema, put_into="path")
@response_schema(schemas.TaskSchema, 200, description="The task, PENDING again")
async def retry_task(request: web.Request) -> web.Response:
    task_id = request["path"]["task_id"]
    async with request.app[POOL].acquire() as conn:
        row = await tasks.retry(conn, task_id)
        parents = [] if row is None else await dependencies.parents(conn, task_id)
    if row is None:
        raise Problem(404, TASK_NOT_FOUND)
    if not row["changed"]:
        raise Problem(409, f"Task is {row['status']}; only a FAILED or CANCELLED task can be retried.")
    request.app[OUTBOX_WAKEUP].set()  # its new outbox row is due now
    request.app[EVENTS_COMMITTED].set()
    metrics.count_transition(row["from_status"], row["status"])
    return json_response({**tasks.public(row), "depends_on": parents})


@docs(tags=["tasks"], summary="Cancel a task",
      description="NEW and PENDING tasks are cancelled at once (200). For an IN_PROGRESS task the "
                  "cancellation is requested (202): the worker stops it and records CANCELLED. "
                  "Cancelling a cancelled task is a no-op (200); a finished one is a conflict (409).",
      responses={202: task_doc("Cancellation requested; the running attempt will stop"),
                 404: NOT_FOUND, 409: problem_doc("The task already finished"),
                 422: INVALID, 503: UNAVAILABLE})
@match_info_schema(schemas.TaskIdPathSchema, put_into="path")
@response_schema(schemas.TaskSchema, 200, description="The task, now CANCELLED")
async def cancel_task(request: web.Request) -> web.Response:
    task_id = request["path"]["task_id"]
    async with request.app[POOL].acquire() as conn:
        row = await tasks.cancel(conn, task_id)
        parents = [] if row is None else await dependencies.parents(conn, task_id)
    if row is None:
        raise Problem(404, TASK_NOT_FOUND)
    if row["status"] != row["from_status"]:  # not a cancel request for a running task
        request.app[EVENTS_COMMITTED].set()
        metrics.count_transition(row["from_status"], row["status"])
    if not row["changed"] and row["status"] != "CANCELLED":
        raise Problem(409, f"Task already {row['status']}; a finished task cannot be cancelled.")
    status = 202 if row["status"] == "IN_PROGRESS" else 200
    return json_response({**tasks.public(row), "depends_on": parents}, status=status)


@docs(tags=["tasks"], summary="A task's status history, oldest first",
      responses={404: NOT_FOUND, 422: INVALID, 503: UNAVAILABLE})
@match_info_schema(schemas.TaskIdPathSchema, put_into="path")
@response_schema(schemas.TaskEventsSchema, 200, description="The task's status changes")
async def list_task_events(request: web.Request) -> web.Response:
    task_id = request["path"]["task_id"]
    async with request.app[POOL].acquire() as conn:
        rows = await tasks.events(conn, task_id)
    if not rows:
        raise Problem(404, TASK_NOT_FOUND)
    items = [{k: r[k] for k in ("id", "from_status", "status", "attempt", "error", "created_at")}
             for r in rows]
    return json_response({"task_id": task_id, "items": items})

@docs(tags=["tasks"], summary="A task's completion callbacks: each delivery and every attempt",
      description="A task created with `callback_url` gets a delivery each time it reaches COMPLETED, "
                  "FAILED or CANCELLED; each attempt shows when it was made, how long it took, and the "
                  "status code or error.",
      responses={404: NOT_FOUND, 422: INVALID, 503: UNAVAILABLE})
@match_info_schema(schemas.TaskIdPathSchema, put_into="path")
@response_schema(schemas.TaskCallbacksSchema, 200, description="The task's deliveries and their attempts")
async def list_task_callbacks(request: web.Request) -> web.Response:
    task_id = request["path"]["task_id"]
    async with request.app[POOL].acquire() as conn:
        if await tasks.get_status(conn, task_id) is None:
            raise Problem(404, TASK_NOT_FOUND)
        rows = await callbacks.list_for_task(conn, task_id)
    return json_response({"task_id": task_id, **callbacks.attempts_json(rows)})


MAX_DEPENDENTS_LISTED = 1000


@docs(tags=["tasks"], summary="The tasks that depend on this one",
      description=f"The ids of the tasks whose `depends_on` names this task (the first {MAX_DEPENDENTS_LISTED} "
                  "by id).",
      responses={404: NOT_FOUND, 422: INVALID, 503: UNAVAILABLE})
@match_info_schema(schemas.TaskIdPathSchema, put_into="path")
@response_schema(schemas.TaskDependentsSchema, 200, description="Its children's ids")
async def list_task_dependents(request: web.Request) -> web.Response:
    task_id = request["path"]["task_id"]
    async with request.app[POOL].acquire() as conn:
        if await tasks.get_status(conn, task_id) is None:
            raise Problem(404, TASK_NOT_FOUND)
        children = await dependencies.children(conn, task_id, MAX_DEPENDENTS_LISTED)
    return json_response({"task_id": task_id, "items": children})


STREAM_FORMAT = """Server-Sent Events. First `retry: 2000`; then, if resuming, the recorded changes after
`Last-Event-ID` (or `last_event_id`) that match the filters, oldest first; then `event: ready` with
`data: {"resumed": bool, "replayed": n}`: from here on every status change is sent once, as soon as it
has committed (in commit order to within ~10 ms; a task's own changes always in order):

    id: <event id>
    event: status
    data: {"id": n, "task_id": "<uuid>", "from_status": "<STATUS>"|null, "status": "<STATUS>",
           "priority": "<PRIORITY>", "queue": "<queue>", "attempt": n, "created_at": "<ISO 8601 UTC>"}

The `id:` line is left out when it would not move the position forward (commits can come out of id
order); `data.id` is always there. A `: heartbeat` comment comes every STREAM_HEARTBEAT_SECONDS.
`event: reset` (`data: {}`) means events were left out (more than STREAM_REPLAY_LIMIT to replay, or
a client too slow to keep up): reload the view and carry on reading.

A running handler's progress reports (ctx.progress) come live, without an `id:` line (they are not
replayed; GET the task for its latest), a few a second per task at most, in order, always after the
status change that started their attempt when the stream saw it, never after the attempt's next status
change; the status filter sees them as IN_PROGRESS:

    event: progress
    data: {"task_id": "<uuid>", "status": "IN_PROGRESS", "priority": "<PRIORITY>", "attempt": n,
           "progress": {"fraction": 0.0-1.0, "message": "<text>"|null, "updated_at": "<ISO 8601 UTC>"}}"""


@docs(tags=["tasks"], summary="Stream status changes as they commit (Server-Sent Events)",
      description=STREAM_FORMAT,
      responses={200: {"description": "The event stream (it stays open)",
                       "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                 422: INVALID, 503: UNAVAILABLE})
@querystring_schema(schemas.StreamQuerySchema, put_into="query")
@headers_schema(schemas.StreamHeadersSchema, put_into="headers")
async def stream_task_events(request: web.Request) -> web.StreamResponse:
    query = request["query"]
    task_id = query.get("task_id")
    subscriber = Subscriber(task_id=None if task_id is None else str(task_id), status=query.get("status"),
                            priority=query.get("priority"), task_queue=query.get("queue"),
                            queue=asyncio.Queue(request.app[SETTINGS].stream_queue_size))
    resume_after = request["headers"].get("last_event_id", query.get("last_event_id"))
    return await serve_stream(request, request.app[LIST_POOL], request.app[EVENT_FEED], request.app[SETTINGS],
                              subscriber, resume_after)


@docs(tags=["kinds"], summary="The kinds this API knows, with their defaults and payload schemas",
      description="The built-in kinds (noop, sleep, fail) and those declared in HANDLER_MODULES, when the "
                  "API process loads them too. A create that leaves out `priority`, `max_attempts`, "
                  "`timeout_seconds` or `queue` gets the values listed here; one naming a kind with a payload schema "
                  "has its `payload` checked against it (422, errors keyed `payload.<field>`).")
@response_schema(schemas.KindListSchema, 200, description="Every known kind, by name")
async def list_kinds(request: web.Request) -> web.Response:
    settings, known = request.app[SETTINGS], request.app[KINDS]
    return json_response({"items": [kinds.describe(known[name], settings) for name in sorted(known)]})


@docs(tags=["stats"], summary="Task counts, outbox backlog and queue depths",
      description="Cheap enough to poll every second: the counts come from trigger-kept counters, "
                  "the backlog from the outbox's index of unpublished rows, the counts per queue from "
                  "a partial index of the tasks not finished yet, the queue depths from RabbitMQ "
                  "(cached for a second; null when the broker is unreachable). A queue no worker "
                  "consumes shows its tasks PENDING and its depth growing. Per limited kind: its "
                  "running attempts and the tasks its limit holds back.",
      responses={503: UNAVAILABLE})
@response_schema(schemas.StatsSchema, 200, description="The numbers")
async def get_stats(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await tasks.count_by_status(conn)
        backlog = await outbox.backlog(conn)
        active = await tasks.count_active_by_queue(conn)
        limited = await limits.backlog(conn)
    counts = {status: dict.fromkeys(tasks.PRIORITIES, 0) for status in tasks.STATUSES}
    for row in rows:
        counts[row["status"]][row["priority"]] = row["n"]
    by_queue = {tasks.DEFAULT_QUEUE: dict.fromkeys(tasks.ACTIVE_STATUSES, 0)}
    for row in active:
        by_queue.setdefault(row["queue"], dict.fromkeys(tasks.ACTIVE_STATUSES, 0))[row["status"]] = row["n"]
    depths = await queue_depths(request.app[QUEUE_PROBE], request.app[SETTINGS], sorted(by_queue))
    return json_response({
        "counts": counts,
        "total": sum(n for by_priority in counts.values() for n in by_priority.values()),
        "outbox_backlog": backlog["due"],
        "outbox_oldest_due_age_seconds": backlog["oldest_due_age_seconds"],
        "queue_depth": depths[tasks.DEFAULT_QUEUE],
        "queues": [{"queue": queue, **counts_of, "depth": depths.get(queue)}
                   for queue, counts_of in sorted(by_queue.items())],
        "limits": [limits.stats(row) for row in limited],
    })


@docs(tags=["stats"], summary="Tasks created, completed and failed per second, over the last minutes",
      description="Counted from the status history (task_events): `created` = NEW events, `completed` = "
                  "COMPLETED, `failed` = FAILED. Only seconds with at least one of them are listed.",
      responses={422: INVALID, 503: UNAVAILABLE})
@querystring_schema(schemas.ThroughputQuerySchema, put_into="query")
@response_schema(schemas.ThroughputSchema, 200, description="Counts per second")
async def get_throughput(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await events.throughput(conn, request["query"]["minutes"])
    return json_response({
        "bucket_seconds": 1, "since": rows[0]["since"], "until": rows[0]["until"],
        "points": [{"at": r["at"], "created": r["created"], "completed": r["completed"], "failed": r["failed"]}
                   for r in rows if r["at"] is not None],
    })


@docs(tags=["health"], summary="The process is alive")
@response_schema(schemas.HealthSchema, 200, description="Alive")
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@docs(tags=["health"], summary="The database answers", responses={503: UNAVAILABLE})
@response_schema(schemas.HealthSchema, 200, description="Ready to serve")
async def ready(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        await db.ping(conn)
    return json_response({"status": "ready"})


def add_routes(app: web.Application) -> None:
    for prefix in ("/api/v1/tasks", "/api/v1/tasks/"):
        app.router.add_post(prefix, create_task)
        app.router.add_get(prefix, list_tasks, allow_head=False)
    # Before /{task_id}, which would take "stream" for a (malformed) task id.
    app.router.add_post("/api/v1/tasks/batch", create_task_batch)
    app.router.add_get("/api/v1/tasks/stream", stream_task_events, allow_head=False)
    # Not "batch": GET or DELETE there is a 405 offering POST, not a task id that is no uuid.
    task = "/api/v1/tasks/{task_id:(?!batch$)[^/]+}"
    app.router.add_get(task, get_task, allow_head=False)
    app.router.add_delete(task, cancel_task)
    app.router.add_get("/api/v1/tasks/{task_id}/status", get_task_status, allow_head=False)
    app.router.add_get("/api/v1/tasks/{task_id}/events", list_task_events, allow_head=False)
    app.router.add_get("/api/v1/tasks/{task_id}/callbacks", list_task_callbacks, allow_head=False)
    app.router.add_get("/api/v1/tasks/{task_id}/dependents", list_task_dependents, allow_head=False)
    app.router.add_post("/api/v1/tasks/{task_id}/retry", retry_task)
    app.router.add_get("/api/v1/kinds", list_kinds, allow_head=False)
    app.router.add_get("/api/v1/stats", get_stats, allow_head=False)
    app.router.add_get("/api/v1/stats/throughput", get_throughput, allow_head=False)
    app.router.add_get("/health", health, allow_head=False)
    app.router.add_get("/ready", ready, allow_head=False)
