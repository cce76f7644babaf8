"""Schedule routes: create, read, edit, delete, and run a schedule now. The dispatcher fires them
(taskservice.dispatcher.fire_schedules_forever)."""

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp_apispec import docs, match_info_schema, querystring_schema, request_schema, response_schema
from marshmallow import ValidationError

from taskservice import metrics, schedules, tasks
from taskservice.api import schemas
from taskservice.api.keys import EVENTS_COMMITTED, KINDS, OUTBOX_WAKEUP, POOL, SETTINGS
from taskservice.api.problems import Problem, validation_problem
from taskservice.api.routes import (
    INVALID,
    UNAVAILABLE,
    json_response,
    problem_doc,
    refuse_callback_urls,
    task_doc,
    task_fields,
)

SCHEDULE_NOT_FOUND = "Schedule not found"
NOT_FOUND = problem_doc("No schedule has this id")
BODY_ERRORS = {413: problem_doc("Body too large"), 415: problem_doc("Body is not JSON"),
               400: problem_doc("Body is not valid JSON"), 422: INVALID, 503: UNAVAILABLE}


def schedule_doc(description: str, **extra: Any) -> dict:
    return {"description": description, **extra,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Schedule"}}}}


async def template(task: dict[str, Any], app: web.Application) -> dict[str, Any]:
    """A schedule's task body as stored: the create fields with the kind's and the configured
    defaults filled in, checked as a create checks them (errors keyed `task.<field>`)."""
    settings = app[SETTINGS]
    try:
        fields = task_fields({**task, "run_at": None}, app[KINDS], settings)
    except ValidationError as exc:
        raise validation_problem({"task": exc.messages}) from None
    await refuse_callback_urls({"task.callback_url": fields}, settings)
    del fields["run_at"]
    return fields


def next_run(spec: schedules.Spec, enabled: bool) -> datetime | None:
    """The first tick after now (None while disabled); 422 naming the field that cannot make one."""
    try:
        upcoming = schedules.next_fire(spec, datetime.now(UTC))
    except schedules.InvalidSchedule as exc:
        raise validation_problem({exc.field: [str(exc)]}) from None
    return upcoming if enabled else None


@docs(tags=["schedules"], summary="Create a schedule",
      description="The dispatcher creates the schedule's task at each tick (with `schedule_id` and the tick "
                  "as `scheduled_for`). Ticks missed while no dispatcher ran fire once, not once each.",
      responses={201: schedule_doc("Created", headers={"Location": {
                     "description": "The new schedule's URL", "schema": {"type": "string"}}}),
                 **BODY_ERRORS})
@request_schema(schemas.ScheduleCreateSchema, put_into="body")
async def create_schedule(request: web.Request) -> web.Response:
    body = request["body"]
    spec = schedules.Spec(cron=body.get("cron"), every=body.get("every"), timezone=body["timezone"])
    next_run_at = next_run(spec, body["enabled"])
    async with request.app[POOL].acquire() as conn:
        row = await schedules.create(conn, name=body["name"], spec=spec,
                                     task=await template(body["task"], request.app),
                                     enabled=body["enabled"], overlap=body["overlap"], next_run_at=next_run_at)
    return json_response(schedules.public(row), status=201, headers={"Location": f"/api/v1/schedules/{row['id']}"})


@docs(tags=["schedules"], summary="List schedules, newest first", responses={422: INVALID, 503: UNAVAILABLE})
@querystring_schema(schemas.ScheduleListQuerySchema, put_into="query")
@response_schema(schemas.SchedulePageSchema, 200, description="One page of schedules")
async def list_schedules(request: web.Request) -> web.Response:
    page, page_size = request["query"]["page"], request["query"]["page_size"]
    async with request.app[POOL].acquire() as conn:
        rows = await schedules.list_page(conn, limit=page_size, offset=(page - 1) * page_size)
        total = await schedules.count(conn)
    return json_response({"items": [schedules.public(r) for r in rows], "total": total,
                          "page": page, "page_size": page_size})


@docs(tags=["schedules"], summary="Get a schedule", responses={404: NOT_FOUND, 422: INVALID, 503: UNAVAILABLE})
@match_info_schema(schemas.ScheduleIdPathSchema, put_into="path")
@response_schema(schemas.ScheduleSchema, 200, description="The schedule")
async def get_schedule(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await schedules.get(conn, request["path"]["schedule_id"])
    if row is None:
        raise Problem(404, SCHEDULE_NOT_FOUND)
    return json_response(schedules.public(row))


@docs(tags=["schedules"], summary="Change a schedule",
      responses={404: NOT_FOUND, **BODY_ERRORS})
@match_info_schema(schemas.ScheduleIdPathSchema, put_into="path")
@request_schema(schemas.SchedulePatchSchema, put_into="body")
@response_schema(schemas.ScheduleSchema, 200, description="The schedule as changed")
async def update_schedule(request: web.Request) -> web.Response:
    if not request.body_exists:  # webargs reads no body as {}: an edit of nothing is a client's mistake
        raise validation_problem({"_schema": ["A JSON object with the fields to change is required."]})
    schedule_id, edit = request["path"]["schedule_id"], request["body"]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        current = await schedules.lock(conn, schedule_id)  # a firing in progress finishes first
        if current is None:
            raise Problem(404, SCHEDULE_NOT_FOUND)
        spec = schedules.spec_of(current)
        if "cron" in edit or "every" in edit:
            spec = schedules.Spec(cron=edit.get("cron"), every=edit.get("every"), timezone=spec.timezone)
        spec = schedules.Spec(cron=spec.cron, every=spec.every, timezone=edit.get("timezone", spec.timezone))
        enabled = edit.get("enabled", current["enabled"])
        next_run_at = current["next_run_at"]
        # Only a real change: re-sending the same timing must not skip a tick that is due.
        if spec != schedules.spec_of(current) or enabled != current["enabled"]:
            next_run_at = next_run(spec, enabled)
        task = await template(edit["task"], request.app) if "task" in edit else current["task"]
        row = await schedules.update(conn, schedule_id, name=edit.get("name", current["name"]), spec=spec,
                                     task=task, enabled=enabled, overlap=edit.get("overlap", current["overlap"]),
                                     next_run_at=next_run_at)
    return json_response(schedules.public(row))


@docs(tags=["schedules"], summary="Delete a schedule",
      description="It fires no more. The tasks it created stay, with `schedule_id` null.",
      responses={404: NOT_FOUND, 422: INVALID, 503: UNAVAILABLE})
@match_info_schema(schemas.ScheduleIdPathSchema, put_into="path")
@response_schema(schemas.ScheduleSchema, 200, description="The schedule as it was")
async def delete_schedule(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await schedules.delete(conn, request["path"]["schedule_id"])
    if row is None:
        raise Problem(404, SCHEDULE_NOT_FOUND)
    return json_response(schedules.public(row))


@docs(tags=["schedules"], summary="Run a schedule's task now",
      description="Creates the schedule's task at once, outside its ticks (whatever `enabled` and `overlap` "
                  "say): `scheduled_for` is now, and it becomes the schedule's last task. `next_run_at` stays.",
      responses={201: task_doc("Created", headers={"Location": {
                     "description": "The new task's URL", "schema": {"type": "string"}}}),
                 404: NOT_FOUND, 422: INVALID, 503: UNAVAILABLE})
@match_info_schema(schemas.ScheduleIdPathSchema, put_into="path")
async def run_schedule(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await schedules.run_now(conn, request["path"]["schedule_id"])
    if row is None:
        raise Problem(404, SCHEDULE_NOT_FOUND)
    request.app[OUTBOX_WAKEUP].set()
    request.app[EVENTS_COMMITTED].soon()
    metrics.TASKS_CREATED.labels(row["priority"]).inc()
    metrics.count_transition(None, "NEW")
    return json_response(tasks.public(row), status=201, headers={"Location": f"/api/v1/tasks/{row['id']}"})


def add_schedule_routes(app: web.Application) -> None:
    for prefix in ("/api/v1/schedules", "/api/v1/schedules/"):
        app.router.add_post(prefix, create_schedule)
        app.router.add_get(prefix, list_schedules, allow_head=False)
    schedule = "/api/v1/schedules/{schedule_id}"
    app.router.add_get(schedule, get_schedule, allow_head=False)
    app.router.add_patch(schedule, update_schedule)
    app.router.add_delete(schedule, delete_schedule)
    app.router.add_post(schedule + "/run", run_schedule)
