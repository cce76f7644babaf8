"""Marshmallow schemas: what requests may carry, and what responses look like (for the spec)."""

import re
from datetime import UTC, datetime

import orjson
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from taskservice import callbacks
from taskservice.handlers import KIND_PATTERN
from taskservice.schedules import MACROS, MAX_EVERY_SECONDS, OVERLAPS
from taskservice.settings import BATCH_MAX_TASKS_LIMIT
from taskservice.tasks import PRIORITIES, STATUSES

# What a create that leaves these out gets, when its kind declares none (taskservice.kinds).
DEFAULT_PRIORITY = "MEDIUM"
DEFAULT_MAX_ATTEMPTS = 3
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_PAYLOAD_DEPTH = 254  # orjson's limit when the payload is stored
MAX_SEARCH_LENGTH = 200
MAX_STATUS_WAIT_SECONDS = 60
MAX_PARENTS = 1000
# Visible ASCII, like the tokens and UUIDs clients send: a header's other bytes
# reach us undecodable (and PostgreSQL could not store them).
IDEMPOTENCY_KEY_PATTERN = re.compile(r"[!-~]+")


# PostgreSQL text and jsonb cannot hold NUL characters; refuse them up front,
# and say so in the spec (NO_NUL) where a pattern can, else with x-no-nul.
NO_NUL = {"pattern": "^[^\\u0000]*$"}


def no_nul(value: str) -> None:
    if "\x00" in value:
        raise ValidationError("Must not contain NUL characters.")


def _contains_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


def valid_payload(value: dict) -> None:
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:  # nested deeper than orjson (and any sane handler) goes
        raise ValidationError(f"Must be nested at most {MAX_PAYLOAD_DEPTH} levels deep.") from None
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise ValidationError(f"Must be at most {MAX_PAYLOAD_BYTES} bytes of JSON.")
    if _contains_nul(value):
        raise ValidationError("Must not contain NUL characters.")


# asyncpg stores these two instants as -infinity and infinity, and reads them back without an offset.
INFINITE_TIMES = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))


def storable_time(value: datetime) -> None:
    # Stored in UTC: an offset must not carry the time past year 1 or 9999 (asyncpg cannot encode it).
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or in_utc in INFINITE_TIMES:
        raise ValidationError("Must fall between years 1 and 9999 in UTC.")


def valid_idempotency_key(value: str) -> None:
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(value):
        raise ValidationError("Must be visible ASCII characters, without spaces.")


def valid_callback_url(value: str) -> None:
    # Its addresses are checked by the route (resolving a name needs the event loop).
    if (problem := callbacks.url_problem(value)) is not None:
        raise ValidationError(problem)


def valid_kind(value: str) -> None:
    if not KIND_PATTERN.fullmatch(value):
        raise ValidationError("Must be 1-100 letters, digits or _ . : -")


class TaskCreateSchema(Schema):
    class Meta:
        # The replaced service (pydantic's default) ignored unknown fields; so do we,
        # so every body its clients sent is still accepted.
        unknown = EXCLUDE
        description = ("A JSON object (UTF-8) of at most MAX_BODY_BYTES (1 MiB by default) once decoded; "
                       "it may be sent with Content-Encoding gzip or deflate (other codings: 415). "
                       "A key given twice in one object is refused (400), and so is JSON nested deeper "
                       "than the parser goes (about 1,000 levels). Unknown fields are ignored.")

    name = fields.String(required=True, validate=[validate.Length(1, 255), no_nul],
                         metadata={"description": "1 to 255 characters, no NUL characters.", **NO_NUL})
    description = fields.String(load_default=None, allow_none=True,
                                validate=[validate.Length(max=10_000), no_nul],
                                metadata={"description": "At most 10,000 characters, no NUL characters.",
                                          **NO_NUL})
    # No load_default for priority, max_attempts and timeout_seconds: left out, they come from
    # the kind's declaration, then the global default (taskservice.api.kinds).
    priority = fields.String(validate=validate.OneOf(PRIORITIES), metadata={
        "description": f"Left out: the kind's default priority, else {DEFAULT_PRIORITY}."})
    kind = fields.String(load_default=None, allow_none=True, validate=valid_kind,
                         metadata={"description": "Handler to run; the configured default if omitted. With "
                                                  "REJECT_UNKNOWN_KINDS, one of GET /api/v1/kinds.",
                                   "pattern": f"^{KIND_PATTERN.pattern}$"})
    queue = fields.String(load_default=None, allow_none=True, validate=valid_kind, metadata={
        "description": "Queue to route the task through (workers consume the queues named by "
                       "`taskservice worker --queues`). Left out or null: the kind's queue, else `default`.",
        "pattern": f"^{KIND_PATTERN.pattern}$"})
    payload = fields.Dict(keys=fields.String(), load_default=dict, validate=valid_payload,
                          metadata={"description": f"JSON object handed to the handler: at most "
                                                   f"{MAX_PAYLOAD_BYTES} bytes as compact JSON, nested at most "
                                                   f"{MAX_PAYLOAD_DEPTH} levels deep, no NUL characters in "
                                                   "any key or string. Checked against the kind's payload "
                                                   "schema when the API knows one (errors as `payload.<field>`).",
                                    "x-max-json-bytes": MAX_PAYLOAD_BYTES, "x-max-depth": MAX_PAYLOAD_DEPTH,
                                    "x-no-nul": True})
    max_attempts = fields.Integer(strict=True, validate=validate.Range(1, 20), metadata={
        "description": f"Left out: the kind's default, else {DEFAULT_MAX_ATTEMPTS}."})
    timeout_seconds = fields.Integer(load_default=None, allow_none=True, strict=True,
                                     validate=validate.Range(1, 86_400), metadata={
                                         "description": "Left out or null: the kind's default, else "
                                                        "DEFAULT_TIMEOUT_SECONDS."})
    run_at = fields.AwareDateTime(load_default=None, allow_none=True, validate=storable_time,
                                  metadata={"description": "Run no earlier than this time (strictly "
                                                           "between years 1 and 9999 in UTC)."})
    callback_url = fields.String(
        load_default=None, allow_none=True,
        validate=[validate.Length(1, callbacks.MAX_URL_LENGTH), no_nul, valid_callback_url],
        metadata={"format": "uri", "description": (
            "POSTed the task JSON once the task is COMPLETED, FAILED or CANCELLED (signed, retried; see "
            "GET /api/v1/tasks/{task_id}/callbacks). An http or https URL whose host resolves only to "
            "public addresses unless CALLBACK_ALLOW_PRIVATE is set.")})
    depends_on = fields.List(fields.UUID(), validate=validate.Length(max=MAX_PARENTS), metadata={
        "description": "Ids of tasks (parents) that must all be COMPLETED before this one is dispatched: "
                       "it stays NEW until then. A parent that ends FAILED or CANCELLED (or already has) "
                       "cancels it, with the error `parent <id> FAILED`. The handler reads the parents' "
                       "results in `ctx.parent_results`. An unknown id is a 422 (`depends_on.<i>`)."})


# Optional query and header parameters have no load_default: a default of None would
# document them as nullable, and a query string or header cannot carry null.
class IdempotencyHeadersSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # every other header

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=[validate.Length(1, 255), valid_idempotency_key],
        metadata={"description": "Repeat a create safely: the same key and body return the first task.",
                  "pattern": f"^{IDEMPOTENCY_KEY_PATTERN.pattern}$"})


class TaskBatchItemSchema(TaskCreateSchema):
    class Meta:
        unknown = EXCLUDE
        description = "One task of a batch: the body of a single create, plus an optional idempotency_key."

    idempotency_key = fields.String(
        load_default=None, allow_none=True, validate=[validate.Length(1, 255), valid_idempotency_key],
        metadata={"description": "This task's own key, shared with single creates: if an unexpired task "
                                 "holds it, that task is returned in this place instead of a new one "
                                 "(409 if it was created from a different body). Unique within a batch.",
                  "pattern": f"^{IDEMPOTENCY_KEY_PATTERN.pattern}$"})
    ref = fields.String(load_default=None, allow_none=True, validate=[validate.Length(1, 255), no_nul], metadata={
        "description": "A name for this item that later items' `depends_on` may use instead of its id. "
                       "Unique within a batch.", **NO_NUL})
    depends_on = fields.List(
        fields.String(validate=[validate.Length(1, 255), no_nul]), validate=validate.Length(max=MAX_PARENTS),
        metadata={"description": "As for a single create; each entry is a task id or the `ref` of an earlier "
                                 "item of this batch (errors keyed `tasks.<i>.depends_on`)."})


class TaskBatchCreateSchema(Schema):
    class Meta:
        unknown = EXCLUDE
        description = ("`tasks`: 1 to BATCH_MAX_TASKS (1,000 by default) task bodies, created all or none. "
                       "The body may be up to the larger of MAX_BODY_BYTES and 8 KiB per BATCH_MAX_TASKS "
                       "(8 MiB by default); otherwise the rules of a single create's body apply.")

    tasks = fields.List(fields.Nested(TaskBatchItemSchema), required=True,
                        validate=validate.Length(min=1, error="Must hold at least one task."),
                        metadata={"description": "Errors name an item by position: `tasks.3.name`."})

    @pre_load
    def not_too_many(self, data, **kwargs):
        # Before any item is validated: a huge list costs nothing but this check.
        items = data.get("tasks") if isinstance(data, dict) else None
        if isinstance(items, list) and len(items) > BATCH_MAX_TASKS_LIMIT:
            raise ValidationError(f"Must have at most {BATCH_MAX_TASKS_LIMIT} items.", "tasks")
        return data

    @validates_schema
    def keys_unique_within_the_batch(self, data, **kwargs):
        errors: dict[int, dict] = {}
        for field in ("idempotency_key", "ref"):
            first_with: dict[str, int] = {}
            for position, item in enumerate(data["tasks"]):
                value = item[field]
                if value is None:
                    continue
                if value in first_with:
                    errors.setdefault(position, {})[field] = [f"Repeats the {field} of tasks.{first_with[value]}."]
                first_with.setdefault(value, position)
        if errors:
            raise ValidationError({"tasks": errors})


class TaskListQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # parameters the replaced service ignored are ignored here too

    status = fields.List(fields.String(validate=validate.OneOf(STATUSES)),
                         metadata={"description": "Repeat to match any of several statuses."})
    priority = fields.List(fields.String(validate=validate.OneOf(PRIORITIES)),
                           metadata={"description": "Repeat to match any of several priorities."})
    queue = fields.List(fields.String(validate=valid_kind, metadata={"pattern": f"^{KIND_PATTERN.pattern}$"}),
                        metadata={"description": "Repeat to match any of several queues."})
    search = fields.String(validate=[validate.Length(max=MAX_SEARCH_LENGTH), no_nul],
                           metadata={"description": "Case-insensitive substring of name or description.",
                                     **NO_NUL})
    waiting = fields.Boolean(metadata={
        "description": "true: only tasks waiting on parents (NEW, `waiting_on` > 0); false: only the others. "
                       "`total` then counts up to SEARCH_COUNT_LIMIT, like a search (not combinable with it)."})
    page = fields.Integer(load_default=1, validate=validate.Range(1, 10_000_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    schedule_id = fields.UUID(metadata={"description": "Only the tasks this schedule created."})


class TaskIdPathSchema(Schema):
    task_id = fields.UUID(required=True)


class ProgressSchema(Schema):
    fraction = fields.Float(required=True, validate=validate.Range(0, 1))
    message = fields.String(allow_none=True, required=True, validate=validate.Length(max=1000))
    updated_at = fields.DateTime(required=True)


class TaskSchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True, required=True)
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    created_at = fields.DateTime(required=True)
    started_at = fields.DateTime(allow_none=True, required=True)
    finished_at = fields.DateTime(allow_none=True, required=True)
    result = fields.Raw(allow_none=True, required=True, metadata={"description": "The handler's JSON result."})
    error = fields.String(allow_none=True, required=True)
    updated_at = fields.DateTime(required=True)
    kind = fields.String(required=True)
    payload = fields.Dict(required=True)
    attempts = fields.Integer(required=True)
    max_attempts = fields.Integer(required=True)
    timeout_seconds = fields.Integer(required=True)
    run_at = fields.DateTime(allow_none=True, required=True)
    cancel_requested_at = fields.DateTime(allow_none=True, required=True)
    callback_url = fields.String(allow_none=True, required=True)
    queue = fields.String(required=True, metadata={"description": "The queue the task is routed through."})
    progress = fields.Nested(ProgressSchema, allow_none=True, required=True, metadata={
        "description": "The running handler's latest progress report (ctx.progress), or null: none yet. "
                       "Cleared when an attempt starts; the last report stays once the task is finished."})
    schedule_id = fields.UUID(allow_none=True, required=True, metadata={
        "description": "The schedule that created the task; null for other tasks, and once the schedule "
                       "is deleted."})
    scheduled_for = fields.DateTime(allow_none=True, required=True, metadata={
        "description": "The schedule's tick the task was created for (the time of a run-now)."})
    depends_on = fields.List(fields.UUID(), required=True, metadata={"description": "The parents' ids."})
    waiting_on = fields.Integer(required=True, metadata={
        "description": "How many parents are not COMPLETED yet; a NEW task with more than 0 waits for them."})


class TaskDependentsSchema(Schema):
    task_id = fields.UUID(required=True)
    items = fields.List(fields.UUID(), required=True, metadata={"description": "The children's ids, by id."})


class TaskPageSchema(Schema):
    items = fields.List(fields.Nested(TaskSchema), required=True)
    total = fields.Integer(required=True)
    total_exact = fields.Boolean(required=True, metadata={
        "description": "False when a search, a queue or a schedule_id filter matched more than SEARCH_COUNT_LIMIT "
                       "(default 1,000) tasks: "
                       "`total` is then that limit."})
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)


class TaskBatchSchema(Schema):
    items = fields.List(fields.Nested(TaskSchema), required=True, metadata={
        "description": "The tasks, in the order of the request's `tasks`."})


class TaskStatusQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    wait = fields.Float(validate=validate.Range(0, MAX_STATUS_WAIT_SECONDS), metadata={
        "description": "With `since`: wait up to this many seconds for the status to differ from it."})
    since = fields.String(validate=validate.OneOf(STATUSES), metadata={
        "description": "Answer at once if the status differs from this one, else wait (see `wait`)."})


class TaskStatusSchema(Schema):
    task_id = fields.UUID(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))


class TaskEventSchema(Schema):
    id = fields.Integer(required=True)
    from_status = fields.String(allow_none=True, required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    attempt = fields.Integer(required=True)
    error = fields.String(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)


class TaskEventsSchema(Schema):
    task_id = fields.UUID(required=True)
    items = fields.List(fields.Nested(TaskEventSchema), required=True)


class CallbackDeliverySchema(Schema):
    id = fields.UUID(required=True, metadata={"description": "Sent as X-Taskservice-Delivery."})
    task_status = fields.String(required=True, metadata={"description": "The status that caused it."})
    url = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("pending", "delivered", "failed")))
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.DateTime(allow_none=True, required=True, metadata={
        "description": "While pending: when it is tried next."})
    created_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(allow_none=True, required=True)


class CallbackAttemptSchema(Schema):
    delivery_id = fields.UUID(required=True)
    attempt = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    duration_seconds = fields.Float(required=True)
    status_code = fields.Integer(allow_none=True, required=True, metadata={
        "description": "The receiver's HTTP status; null when no response came."})
    error = fields.String(allow_none=True, required=True, metadata={
        "description": "Why it did not count as delivered (with at most 1 KiB of the response body)."})
    outcome = fields.String(required=True, validate=validate.OneOf(("delivered", "retry", "failed")))


class TaskCallbacksSchema(Schema):
    task_id = fields.UUID(required=True)
    deliveries = fields.List(fields.Nested(CallbackDeliverySchema), required=True)
    items = fields.List(fields.Nested(CallbackAttemptSchema), required=True, metadata={
        "description": "Every attempt, oldest first."})


class PriorityCountsSchema(Schema):
    LOW = fields.Integer(required=True)
    MEDIUM = fields.Integer(required=True)
    HIGH = fields.Integer(required=True)


class StatusCountsSchema(Schema):
    NEW = fields.Nested(PriorityCountsSchema, required=True)
    PENDING = fields.Nested(PriorityCountsSchema, required=True)
    IN_PROGRESS = fields.Nested(PriorityCountsSchema, required=True)
    COMPLETED = fields.Nested(PriorityCountsSchema, required=True)
    FAILED = fields.Nested(PriorityCountsSchema, required=True)
    CANCELLED = fields.Nested(PriorityCountsSchema, required=True)


class QueueStatsSchema(Schema):
    queue = fields.String(required=True)
    NEW = fields.Integer(required=True)
    PENDING = fields.Integer(required=True, metadata={
        "description": "Waiting in the queue: with no worker consuming it, this grows."})
    IN_PROGRESS = fields.Integer(required=True)
    depth = fields.Integer(required=True, allow_none=True, metadata={
        "description": "Messages ready in its RabbitMQ queue; null when unknown (broker unreachable, or "
                       "nothing published to the queue yet)."})


class KindLimitStatsSchema(Schema):
    kind = fields.String(required=True)
    concurrency = fields.Integer(required=True, allow_none=True, metadata={
        "description": "Most attempts of the kind running at once over all workers; null: no such limit."})
    rate = fields.String(required=True, allow_none=True, metadata={
        "description": "Most starts per second, minute or hour (`100/m`); null: no such limit.",
        "example": "100/m"})
    running = fields.Integer(required=True, metadata={"description": "Attempts of the kind running now."})
    waiting = fields.Integer(required=True, metadata={
        "description": "PENDING tasks of the kind its limit held back, waiting to come due again."})
    oldest_wait_seconds = fields.Float(required=True, metadata={
        "description": "How long the longest-waiting of them has waited since the limit first held it "
                       "back (0 when none wait)."})


class StatsSchema(Schema):
    counts = fields.Nested(StatusCountsSchema, required=True, metadata={
        "description": "Tasks by status, then priority."})
    total = fields.Integer(required=True)
    outbox_backlog = fields.Integer(required=True, metadata={
        "description": "Outbox rows due for publishing and not yet published."})
    outbox_oldest_due_age_seconds = fields.Float(required=True, metadata={
        "description": "How long the oldest of them has been due (0 when there are none)."})
    queue_depth = fields.Integer(required=True, allow_none=True, metadata={
        "description": "Messages ready in the `default` queue as RabbitMQ reports them; null when the "
                       "broker is unreachable or the queue is not declared yet."})
    queues = fields.List(fields.Nested(QueueStatsSchema), required=True, metadata={
        "description": "Per queue with tasks NEW, PENDING or IN_PROGRESS (and `default` always), by name: "
                       "their counts and the queue's depth."})
    limits = fields.List(fields.Nested(KindLimitStatsSchema), required=True, metadata={
        "description": "Each kind with a concurrency or rate limit (as its workers declared them when "
                       "they started), by name."})


class HealthSchema(Schema):
    status = fields.String(required=True)


class ProblemSchema(Schema):
    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), metadata={
        "description": "422 only: field name → list of messages. A value inside a list or a nested object "
                       "is named by its dotted path (`status.1` is the second `status` value); errors about "
                       "the input as a whole are under `_schema`."})


MAX_EVENT_ID = 2**63 - 1


class StreamQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    task_id = fields.UUID(metadata={"description": "Only this task's changes."})
    status = fields.String(validate=validate.OneOf(STATUSES), metadata={
        "description": "Only changes to this status."})
    priority = fields.String(validate=validate.OneOf(PRIORITIES), metadata={
        "description": "Only changes of tasks with this priority."})
    queue = fields.String(validate=valid_kind, metadata={"description": "Only changes of tasks in this queue.",
                                                         "pattern": f"^{KIND_PATTERN.pattern}$"})
    last_event_id = fields.Integer(validate=validate.Range(0, MAX_EVENT_ID), metadata={
        "description": "Resume after this event id, like the Last-Event-ID header (which wins)."})


class StreamHeadersSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # every other header

    last_event_id = fields.Integer(data_key="Last-Event-ID", validate=validate.Range(0, MAX_EVENT_ID), metadata={
        "description": "Resume: replay the recorded changes after this event id, then go live."})


class ThroughputQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    minutes = fields.Integer(load_default=5, validate=validate.Range(1, 60), metadata={
        "description": "How many minutes back to count."})


class ThroughputPointSchema(Schema):
    at = fields.DateTime(required=True, metadata={"description": "The second counted (its start)."})
    created = fields.Integer(required=True)
    completed = fields.Integer(required=True)
    failed = fields.Integer(required=True)


class ThroughputSchema(Schema):
    bucket_seconds = fields.Integer(required=True)
    since = fields.DateTime(required=True)
    until = fields.DateTime(required=True)
    points = fields.List(fields.Nested(ThroughputPointSchema), required=True, metadata={
        "description": "Seconds with at least one such event, oldest first (others count zero)."})


class KindSchema(Schema):
    kind = fields.String(required=True)
    executor = fields.String(required=True, validate=validate.OneOf(("async", "thread", "process")), metadata={
        "description": "Where the worker runs the handler: its event loop, a thread, or a child process."})
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES), metadata={
        "description": "What a create without `priority` gets."})
    max_attempts = fields.Integer(required=True, metadata={"description": "What a create without it gets."})
    timeout_seconds = fields.Integer(required=True, metadata={"description": "What a create without it gets."})
    queue = fields.String(required=True, metadata={
        "description": "What a create without `queue` gets: the declared queue, else `default`."})
    concurrency = fields.Integer(required=True, allow_none=True, metadata={
        "description": "Most attempts of this kind at once, if declared."})
    rate = fields.String(required=True, allow_none=True, metadata={
        "description": "Most starts per second, minute or hour (`100/m`), if declared."})
    payload_schema = fields.Dict(required=True, allow_none=True, metadata={
        "description": "JSON Schema of the payload the kind accepts; null when it declares none."})


class KindListSchema(Schema):
    items = fields.List(fields.Nested(KindSchema), required=True, metadata={"description": "By kind name."})


# -- schedules ----------------------------------------------------------------------

SCHEDULE_TIMEZONE_DESCRIPTION = "An IANA time zone (`Europe/Berlin`) in which `cron` is read; default UTC."
SCHEDULE_CRON_DESCRIPTION = (
    "Five fields (minute hour day-of-month month day-of-week, as Debian's cron reads them) or one of "
    f"{', '.join(MACROS)}, read in `timezone`. A time the clocks skip fires once at the first minute after "
    "it; a time they repeat fires once. Exactly one of `cron` and `every`.")
SCHEDULE_EVERY_DESCRIPTION = (
    "An interval in seconds instead of `cron`: ticks fall on multiples of it since 1970-01-01T00:00:00Z "
    "(`every: 3600` fires on the hour in UTC).")


class ScheduleTaskSchema(TaskCreateSchema):
    class Meta:
        unknown = EXCLUDE
        exclude = ("run_at", "depends_on")
        description = ("The task each tick creates: a create body as POST /api/v1/tasks/ takes it, without "
                       "`run_at` and `depends_on` (each task is due at its tick; they are ignored like any unknown "
                       "field).")


class ScheduleCreateSchema(Schema):
    class Meta:
        unknown = EXCLUDE
        description = "A recurring task: `cron` or `every`, and the `task` each tick creates."

    name = fields.String(required=True, validate=[validate.Length(1, 255), no_nul],
                         metadata={"description": "1 to 255 characters, no NUL characters.", **NO_NUL})
    cron = fields.String(validate=[validate.Length(1, 255), no_nul],
                         metadata={"description": SCHEDULE_CRON_DESCRIPTION, **NO_NUL})
    every = fields.Integer(strict=True, validate=validate.Range(1, MAX_EVERY_SECONDS),
                           metadata={"description": SCHEDULE_EVERY_DESCRIPTION})
    timezone = fields.String(load_default="UTC", validate=[validate.Length(1, 255), no_nul],
                             metadata={"description": SCHEDULE_TIMEZONE_DESCRIPTION, **NO_NUL})
    task = fields.Nested(ScheduleTaskSchema, required=True)
    enabled = fields.Boolean(load_default=True, metadata={"description": "A disabled schedule does not fire."})
    overlap = fields.String(load_default="allow", validate=validate.OneOf(OVERLAPS), metadata={
        "description": "`skip`: a tick does not fire while the task of the previous one is unfinished "
                       "(NEW, PENDING or IN_PROGRESS)."})

    @validates_schema
    def cron_or_every(self, data, **kwargs):
        check_spec(data, required=True)


def check_spec(data: dict, required: bool) -> None:
    """422 unless `data` names exactly one of cron and every (either may be absent when not
    `required`: a partial edit)."""
    if "cron" in data and "every" in data:
        raise ValidationError(["Give cron or every, not both."], "every")
    if required and "cron" not in data and "every" not in data:
        raise ValidationError(["Give cron (an expression) or every (seconds)."], "cron")


class SchedulePatchSchema(Schema):
    class Meta:
        unknown = EXCLUDE
        description = ("Any of a schedule's fields; those left out keep their value. `cron` replaces an "
                       "`every` and the other way round. A change of `cron`, `every`, `timezone` or "
                       "`enabled` moves `next_run_at` to the first tick after now.")

    name = fields.String(validate=[validate.Length(1, 255), no_nul],
                         metadata={"description": "1 to 255 characters, no NUL characters.", **NO_NUL})
    cron = fields.String(validate=[validate.Length(1, 255), no_nul],
                         metadata={"description": SCHEDULE_CRON_DESCRIPTION, **NO_NUL})
    every = fields.Integer(strict=True, validate=validate.Range(1, MAX_EVERY_SECONDS),
                           metadata={"description": SCHEDULE_EVERY_DESCRIPTION})
    timezone = fields.String(validate=[validate.Length(1, 255), no_nul],
                             metadata={"description": SCHEDULE_TIMEZONE_DESCRIPTION, **NO_NUL})
    task = fields.Nested(ScheduleTaskSchema, metadata={"description": "Replaces the whole task."})
    enabled = fields.Boolean()
    overlap = fields.String(validate=validate.OneOf(OVERLAPS))

    @validates_schema
    def not_both(self, data, **kwargs):
        check_spec(data, required=False)


class ScheduleListQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    page = fields.Integer(load_default=1, validate=validate.Range(1, 10_000_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class ScheduleIdPathSchema(Schema):
    schedule_id = fields.UUID(required=True)


class ScheduleSchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    cron = fields.String(allow_none=True, required=True, metadata={"description": SCHEDULE_CRON_DESCRIPTION})
    every = fields.Integer(allow_none=True, required=True, metadata={"description": SCHEDULE_EVERY_DESCRIPTION})
    timezone = fields.String(required=True)
    task = fields.Dict(required=True, metadata={
        "description": "The task each tick creates, with the configured defaults filled in."})
    enabled = fields.Boolean(required=True)
    overlap = fields.String(required=True, validate=validate.OneOf(OVERLAPS))
    next_run_at = fields.DateTime(allow_none=True, required=True, metadata={
        "description": "The next tick; null while disabled."})
    last_run_at = fields.DateTime(allow_none=True, required=True, metadata={
        "description": "When the last task was created (by a tick or by run)."})
    last_task_id = fields.UUID(allow_none=True, required=True)
    last_task_status = fields.String(allow_none=True, required=True, validate=validate.OneOf(STATUSES), metadata={
        "description": "The last task's status; null when there is none (or it was deleted by retention)."})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class SchedulePageSchema(Schema):
    items = fields.List(fields.Nested(ScheduleSchema), required=True)
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
