"""Settings: one frozen object built from the environment at start-up and passed down."""

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from taskservice.handlers import KIND_PATTERN
from taskservice.kinds import Rate, parse_rate


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _number(env: Mapping[str, str], name: str, default, low, high, parse=float):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        kind = "a whole number" if parse is int else "a number"
        raise SettingsError(f"{name} must be {kind}, not {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high, parse=int)


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _number(env, name, default, low, high, parse=float)


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip()
    if value.lower() not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value.lower()


API_KEY_PATTERN = re.compile(r"[!-+\--~]+")  # visible ASCII but the comma that separates keys


def _api_keys(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in (env.get(name) or "").split(",") if k.strip())
    for key in keys:
        if not API_KEY_PATTERN.fullmatch(key):
            # The message never quotes the value: it is a secret.
            raise SettingsError(f"{name} must be comma-separated values of visible ASCII characters "
                                "(no spaces)")
    return keys


def parse_queues(raw: str | None, name: str) -> tuple[str, ...]:
    """Comma-separated task queue names (spaces and repeats ignored); `default` when none are given."""
    queues = tuple(dict.fromkeys(q.strip() for q in (raw or "").split(",") if q.strip()))
    for queue in queues:
        if not KIND_PATTERN.fullmatch(queue):
            raise SettingsError(f"{name}: queue {queue!r} must be 1-100 letters, digits or _ . : -")
    return queues or ("default",)


def _per_kind(env: Mapping[str, str], name: str, parse, example: str) -> tuple:
    """`kind=value,kind=value` as ((kind, parsed value), ...); a later kind wins."""
    pairs: dict[str, object] = {}
    for item in (env.get(name) or "").split(","):
        if not item.strip():
            continue
        kind, _, raw = item.partition("=")
        kind = kind.strip()
        if not KIND_PATTERN.fullmatch(kind) or not raw.strip():
            raise SettingsError(f"{name} must look like {example!r} (kind=limit, comma-separated), not {item!r}")
        try:
            pairs[kind] = parse(raw.strip())
        except ValueError as exc:
            raise SettingsError(f"{name}: {kind}: {exc}") from None
    return tuple(pairs.items())


def _concurrency(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise ValueError(f"concurrency must be a whole number from 1 to 10000, not {raw!r}")
    return int(raw)


# What a batch create's body may spend per task on average: its limit scales with BATCH_MAX_TASKS.
BATCH_MAX_BODY_BYTES_PER_TASK = 8 * 1024
BATCH_MAX_TASKS_LIMIT = 10_000  # the highest BATCH_MAX_TASKS accepted


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql://postgres:postgres@localhost:5432/taskservice"
    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    host: str = "0.0.0.0"
    port: int = 8000
    log_level: str = "info"
    log_format: str = "text"
    db_pool_min: int = 1
    db_pool_max: int = 10
    max_body_bytes: int = 1024 * 1024
    batch_max_tasks: int = 1_000  # tasks one POST /api/v1/tasks/batch may create
    search_count_limit: int = 1_000
    default_kind: str = "noop"
    default_timeout_seconds: int = 300
    dispatcher_embedded: bool = True
    worker_concurrency: int = 4
    worker_queues: tuple[str, ...] = ("default",)  # the task queues a worker consumes
    amqp_exchange: str = "taskservice"
    amqp_queue: str = "taskservice.tasks"
    dispatch_batch_size: int = 200
    dispatch_poll_seconds: float = 1.0
    reap_interval_seconds: float = 5.0
    # A PENDING task published this long ago, while the queue holds no message, lost its message.
    pending_redispatch_seconds: float = 300.0
    lease_seconds: float = 30.0
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    shutdown_grace_seconds: float = 10.0
    handler_modules: tuple[str, ...] = ()
    reject_unknown_kinds: bool = False  # a create naming a kind the API does not know is a 422
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    # Observability: /metrics of a standalone dispatcher or worker (the API serves its own).
    metrics_port: int = 0  # 0 = not served
    # Protection and upkeep. API keys stay out of repr(): settings may be logged.
    api_keys: tuple[str, ...] = field(default=(), repr=False)  # empty = authentication off
    auth_protect_docs: bool = False
    auth_protect_metrics: bool = False
    idempotency_ttl_seconds: int = 86_400
    max_result_bytes: int = 1024 * 1024
    retention_days: int = 30  # 0 = keep finished tasks forever
    outbox_retention_seconds: int = 3600
    maintenance_interval_seconds: float = 60.0
    # The live status stream (GET /api/v1/tasks/stream).
    stream_heartbeat_seconds: float = 15.0
    stream_replay_limit: int = 1_000  # events a resumed stream replays; more and it sends `reset`
    stream_queue_size: int = 1_000  # events buffered per stream; a slower client gets `reset`
    stream_max_clients: int = 200  # open streams per API process; past it a new one gets 503
    stream_write_timeout_seconds: float = 30.0  # a stream whose client reads nothing this long is closed
    # Slow and abundant clients. The header deadline also bounds an idle keep-alive connection:
    # to the server both hold a connection without a request.
    request_header_timeout_seconds: float = 75.0
    request_body_timeout_seconds: float = 60.0
    max_connections: int = 1_000  # open HTTP connections per API process; past it a new one gets 503
    api_processes: int = 1  # `taskservice api` processes sharing the port (SO_REUSEPORT)

    @property
    def batch_max_body_bytes(self) -> int:
        """The body limit of a batch create: MAX_BODY_BYTES, or BATCH_MAX_BODY_BYTES_PER_TASK per task
        when that is more. Tasks with large payloads go in smaller batches."""
        return max(self.max_body_bytes, self.batch_max_tasks * BATCH_MAX_BODY_BYTES_PER_TASK)
    # Completion webhooks (taskservice.callbacks). Secrets stay out of repr(): settings may be logged.
    callback_secrets: tuple[str, ...] = field(default=(), repr=False)  # the first signs; empty = unsigned
    callback_allow_private: bool = False
    callback_timeout_seconds: float = 10.0
    callback_retry_hours: float = 24.0
    callback_retry_base_seconds: float = 10.0
    callback_retry_max_seconds: float = 3600.0
    callback_batch_size: int = 50
    callback_poll_seconds: float = 1.0
    # Limits per kind (taskservice.limits), over what the handlers declare.
    kind_concurrency: tuple[tuple[str, int], ...] = ()
    kind_rate: tuple[tuple[str, Rate], ...] = ()
    kind_limit_retry_seconds: float = 0.5  # a task a limit refused comes due again after 1-2x this


# Every environment variable load_settings reads: name → (Settings field, one-line meaning), for
# `taskservice --help` (a test checks it lists exactly what load_settings reads).
ENVIRONMENT: Mapping[str, tuple[str, str]] = {
    "DATABASE_URL": ("database_url", "PostgreSQL to use"),
    "AMQP_URL": ("amqp_url", "RabbitMQ to use"),
    "HOST": ("host", "API listen address"),
    "PORT": ("port", "API port"),
    "LOG_LEVEL": ("log_level", "debug, info, warning or error"),
    "LOG_FORMAT": ("log_format", "text, or json (one object per line)"),
    "METRICS_PORT": ("metrics_port", "port of a standalone dispatcher's or worker's /metrics (0: off)"),
    "DB_POOL_MIN": ("db_pool_min", "fewest database connections per process"),
    "DB_POOL_MAX": ("db_pool_max", "most database connections per process"),
    "MAX_BODY_BYTES": ("max_body_bytes", "largest request body (413 beyond)"),
    "BATCH_MAX_TASKS": ("batch_max_tasks", "most tasks in one batch create (more: 422); its body may take "
                                           "the larger of MAX_BODY_BYTES and 8 KiB per task"),
    "SEARCH_COUNT_LIMIT": ("search_count_limit", "a search counts matches up to this many"),
    "DEFAULT_KIND": ("default_kind", "handler for tasks created without `kind`"),
    "DEFAULT_TIMEOUT_SECONDS": ("default_timeout_seconds", "timeout of tasks created without `timeout_seconds`"),
    "DISPATCHER_EMBEDDED": ("dispatcher_embedded", "the API process also drains the outbox"),
    "DISPATCH_BATCH_SIZE": ("dispatch_batch_size", "outbox rows published per transaction"),
    "DISPATCH_POLL_SECONDS": ("dispatch_poll_seconds", "outbox polling interval when no NOTIFY arrives"),
    "REAP_INTERVAL_SECONDS": ("reap_interval_seconds", "how often expired leases are looked for"),
    "PENDING_REDISPATCH_SECONDS": ("pending_redispatch_seconds",
                                   "a PENDING task published this long ago, with no message queued, is sent again"),
    "WORKER_CONCURRENCY": ("worker_concurrency", "tasks a worker runs at once (also its prefetch)"),
    "WORKER_QUEUES": ("worker_queues", "comma-separated task queues a worker consumes (--queues)"),
    "WORKER_ID": ("worker_id", "recorded on the attempts a worker holds"),
    "LEASE_SECONDS": ("lease_seconds", "lease on a running task; renewed every third of it"),
    "RETRY_BASE_SECONDS": ("retry_base_seconds", "retry backoff: about base*2^(attempt-1), with jitter"),
    "RETRY_MAX_SECONDS": ("retry_max_seconds", "longest retry backoff"),
    "SHUTDOWN_GRACE_SECONDS": ("shutdown_grace_seconds", "how long a stopping worker lets handlers finish"),
    "HANDLER_MODULES": ("handler_modules", "comma-separated importable modules declaring handlers "
                        "(@handler or HANDLERS); the API loads them too, for defaults and payload schemas"),
    "REJECT_UNKNOWN_KINDS": ("reject_unknown_kinds", "a create whose kind is not a built-in or in "
                             "HANDLER_MODULES is a 422"),
    "AMQP_EXCHANGE": ("amqp_exchange", "RabbitMQ exchange"),
    "AMQP_QUEUE": ("amqp_queue", "RabbitMQ priority queue"),
    "API_KEYS": ("api_keys", "comma-separated API keys; set, /api/v1 needs one"),
    "AUTH_PROTECT_DOCS": ("auth_protect_docs", "with API_KEYS, /docs and the spec need a key too"),
    "AUTH_PROTECT_METRICS": ("auth_protect_metrics", "with API_KEYS, the API's /metrics needs a key too"),
    "IDEMPOTENCY_TTL_SECONDS": ("idempotency_ttl_seconds", "an Idempotency-Key expires this long after its task"),
    "MAX_RESULT_BYTES": ("max_result_bytes", "largest handler result; a larger one fails the attempt"),
    "RETENTION_DAYS": ("retention_days", "finished tasks are deleted this long after finishing (0: never)"),
    "OUTBOX_RETENTION_SECONDS": ("outbox_retention_seconds", "published outbox rows are kept this long"),
    "MAINTENANCE_INTERVAL_SECONDS": ("maintenance_interval_seconds", "how often retention and upkeep run"),
    "STREAM_HEARTBEAT_SECONDS": ("stream_heartbeat_seconds", "heartbeat interval of an open status stream"),
    "STREAM_REPLAY_LIMIT": ("stream_replay_limit", "most events a resumed stream replays (more: `reset`)"),
    "STREAM_QUEUE_SIZE": ("stream_queue_size", "events buffered per stream (a slower client gets `reset`)"),
    "STREAM_MAX_CLIENTS": ("stream_max_clients", "open status streams per API process (more: 503)"),
    "STREAM_WRITE_TIMEOUT_SECONDS": ("stream_write_timeout_seconds",
                                     "a stream whose write stays blocked this long is dropped and closed"),
    "REQUEST_HEADER_TIMEOUT_SECONDS": ("request_header_timeout_seconds",
                                       "time for a request's headers to arrive; also the keep-alive idle limit"),
    "REQUEST_BODY_TIMEOUT_SECONDS": ("request_body_timeout_seconds", "time for a request body to arrive (else 408)"),
    "MAX_CONNECTIONS": ("max_connections", "open HTTP connections per API process (more: 503)"),
    "API_PROCESSES": ("api_processes",
                      "`api` processes serving the port, each with its own pool and dispatcher (--processes)"),
    "CALLBACK_SECRET": ("callback_secrets",
                        "comma-separated secrets signing callbacks (the first signs; unset: unsigned)"),
    "CALLBACK_ALLOW_PRIVATE": ("callback_allow_private",
                               "callback URLs may reach loopback, private and link-local addresses"),
    "CALLBACK_TIMEOUT_SECONDS": ("callback_timeout_seconds", "time allowed for one callback request"),
    "CALLBACK_RETRY_HOURS": ("callback_retry_hours", "a callback is retried this long, then marked failed"),
    "CALLBACK_RETRY_BASE_SECONDS": ("callback_retry_base_seconds",
                                    "callback backoff: up to base*2^(attempt-1), full jitter"),
    "CALLBACK_RETRY_MAX_SECONDS": ("callback_retry_max_seconds", "longest callback backoff"),
    "CALLBACK_BATCH_SIZE": ("callback_batch_size", "callbacks a dispatcher sends at once"),
    "CALLBACK_POLL_SECONDS": ("callback_poll_seconds", "how often due callbacks are looked for"),
    "KIND_CONCURRENCY": ("kind_concurrency", "most attempts of a kind running at once over all workers, "
                         "e.g. send_email=2,report=1 (over @handler(concurrency=))"),
    "KIND_RATE": ("kind_rate", "most starts of a kind per second, minute or hour over all workers, "
                  "e.g. send_email=100/m (over @handler(rate=))"),
    "KIND_LIMIT_RETRY_SECONDS": ("kind_limit_retry_seconds",
                                 "a task its kind's limit holds back comes due again after 1-2x this"),
}
# Defaults that are not one fixed value.
DEFAULT_SHOWN = {"worker_id": "<hostname>-<pid>", "handler_modules": "(none)", "worker_queues": "default",
                 "api_keys": "(none: no authentication)",
                 "callback_secrets": "(none: callbacks unsigned)", "kind_concurrency": "(none)",
                 "kind_rate": "(none)"}


def describe_environment() -> str:
    """The settings as `NAME=default` lines, each followed by its meaning."""
    defaults = Settings()
    lines = []
    for name, (attribute, meaning) in ENVIRONMENT.items():
        default = getattr(defaults, attribute)
        shown = DEFAULT_SHOWN.get(attribute) or (str(default).lower() if isinstance(default, bool) else default)
        lines += [f"  {name}={shown}", f"      {meaning}"]
    return "\n".join(lines)


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """Read every setting from `env`; a bad value stops start-up with its name."""
    defaults = Settings()
    settings = Settings(
        database_url=env.get("DATABASE_URL") or defaults.database_url,
        amqp_url=env.get("AMQP_URL") or defaults.amqp_url,
        host=env.get("HOST") or defaults.host,
        port=_int(env, "PORT", defaults.port, 1, 65535),
        log_level=_choice(env, "LOG_LEVEL", defaults.log_level,
                          ("debug", "info", "warning", "error")),
        log_format=_choice(env, "LOG_FORMAT", defaults.log_format, ("json", "text")),
        db_pool_min=_int(env, "DB_POOL_MIN", defaults.db_pool_min, 0, 100),
        db_pool_max=_int(env, "DB_POOL_MAX", defaults.db_pool_max, 1, 100),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", defaults.max_body_bytes,
                            1024, 64 * 1024 * 1024),
        batch_max_tasks=_int(env, "BATCH_MAX_TASKS", defaults.batch_max_tasks, 1, BATCH_MAX_TASKS_LIMIT),
        search_count_limit=_int(env, "SEARCH_COUNT_LIMIT", defaults.search_count_limit, 1, 10_000_000),
        default_kind=env.get("DEFAULT_KIND") or defaults.default_kind,
        default_timeout_seconds=_int(env, "DEFAULT_TIMEOUT_SECONDS",
                                     defaults.default_timeout_seconds, 1, 86400),
        dispatcher_embedded=_bool(env, "DISPATCHER_EMBEDDED", defaults.dispatcher_embedded),
        worker_concurrency=_int(env, "WORKER_CONCURRENCY", defaults.worker_concurrency, 1, 256),
        amqp_exchange=env.get("AMQP_EXCHANGE") or defaults.amqp_exchange,
        amqp_queue=env.get("AMQP_QUEUE") or defaults.amqp_queue,
        dispatch_batch_size=_int(env, "DISPATCH_BATCH_SIZE", defaults.dispatch_batch_size, 1, 5000),
        dispatch_poll_seconds=_float(env, "DISPATCH_POLL_SECONDS", defaults.dispatch_poll_seconds,
                                     0.05, 60),
        reap_interval_seconds=_float(env, "REAP_INTERVAL_SECONDS", defaults.reap_interval_seconds,
                                     0.1, 3600),
        pending_redispatch_seconds=_float(env, "PENDING_REDISPATCH_SECONDS", defaults.pending_redispatch_seconds,
                                          0.1, 86_400),
        lease_seconds=_float(env, "LEASE_SECONDS", defaults.lease_seconds, 1, 3600),
        retry_base_seconds=_float(env, "RETRY_BASE_SECONDS", defaults.retry_base_seconds, 0, 3600),
        retry_max_seconds=_float(env, "RETRY_MAX_SECONDS", defaults.retry_max_seconds, 0, 86400),
        shutdown_grace_seconds=_float(env, "SHUTDOWN_GRACE_SECONDS", defaults.shutdown_grace_seconds,
                                      0, 3600),
        handler_modules=tuple(m.strip() for m in (env.get("HANDLER_MODULES") or "").split(",")
                              if m.strip()),
        reject_unknown_kinds=_bool(env, "REJECT_UNKNOWN_KINDS", defaults.reject_unknown_kinds),
        worker_queues=parse_queues(env.get("WORKER_QUEUES"), "WORKER_QUEUES"),
        worker_id=env.get("WORKER_ID") or defaults.worker_id,
        metrics_port=_int(env, "METRICS_PORT", defaults.metrics_port, 0, 65535),
        api_keys=_api_keys(env, "API_KEYS"),
        auth_protect_docs=_bool(env, "AUTH_PROTECT_DOCS", defaults.auth_protect_docs),
        auth_protect_metrics=_bool(env, "AUTH_PROTECT_METRICS", defaults.auth_protect_metrics),
        idempotency_ttl_seconds=_int(env, "IDEMPOTENCY_TTL_SECONDS", defaults.idempotency_ttl_seconds,
                                     1, 365 * 86_400),
        max_result_bytes=_int(env, "MAX_RESULT_BYTES", defaults.max_result_bytes, 1, 64 * 1024 * 1024),
        retention_days=_int(env, "RETENTION_DAYS", defaults.retention_days, 0, 36_500),
        outbox_retention_seconds=_int(env, "OUTBOX_RETENTION_SECONDS", defaults.outbox_retention_seconds,
                                      1, 30 * 86_400),
        maintenance_interval_seconds=_float(env, "MAINTENANCE_INTERVAL_SECONDS",
                                            defaults.maintenance_interval_seconds, 0.1, 86_400),
        # At most 30: the dashboard takes 45 s without a byte for a dead connection.
        stream_heartbeat_seconds=_float(env, "STREAM_HEARTBEAT_SECONDS", defaults.stream_heartbeat_seconds,
                                        0.1, 30),
        stream_replay_limit=_int(env, "STREAM_REPLAY_LIMIT", defaults.stream_replay_limit, 1, 100_000),
        stream_queue_size=_int(env, "STREAM_QUEUE_SIZE", defaults.stream_queue_size, 1, 100_000),
        stream_max_clients=_int(env, "STREAM_MAX_CLIENTS", defaults.stream_max_clients, 1, 100_000),
        stream_write_timeout_seconds=_float(env, "STREAM_WRITE_TIMEOUT_SECONDS",
                                            defaults.stream_write_timeout_seconds, 0.1, 3600),
        request_header_timeout_seconds=_float(env, "REQUEST_HEADER_TIMEOUT_SECONDS",
                                              defaults.request_header_timeout_seconds, 0.1, 3600),
        request_body_timeout_seconds=_float(env, "REQUEST_BODY_TIMEOUT_SECONDS",
                                            defaults.request_body_timeout_seconds, 0.1, 3600),
        max_connections=_int(env, "MAX_CONNECTIONS", defaults.max_connections, 1, 1_000_000),
        api_processes=_int(env, "API_PROCESSES", defaults.api_processes, 1, 256),
        callback_secrets=_api_keys(env, "CALLBACK_SECRET"),
        callback_allow_private=_bool(env, "CALLBACK_ALLOW_PRIVATE", defaults.callback_allow_private),
        callback_timeout_seconds=_float(env, "CALLBACK_TIMEOUT_SECONDS", defaults.callback_timeout_seconds,
                                        0.1, 300),
        callback_retry_hours=_float(env, "CALLBACK_RETRY_HOURS", defaults.callback_retry_hours, 0, 720),
        callback_retry_base_seconds=_float(env, "CALLBACK_RETRY_BASE_SECONDS",
                                           defaults.callback_retry_base_seconds, 0, 3600),
        callback_retry_max_seconds=_float(env, "CALLBACK_RETRY_MAX_SECONDS", defaults.callback_retry_max_seconds,
                                          0, 86_400),
        callback_batch_size=_int(env, "CALLBACK_BATCH_SIZE", defaults.callback_batch_size, 1, 1000),
        callback_poll_seconds=_float(env, "CALLBACK_POLL_SECONDS", defaults.callback_poll_seconds, 0.05, 60),
        kind_concurrency=_per_kind(env, "KIND_CONCURRENCY", _concurrency, "send_email=2,report=1"),
        kind_rate=_per_kind(env, "KIND_RATE", parse_rate, "send_email=100/m,report=5/s"),
        kind_limit_retry_seconds=_float(env, "KIND_LIMIT_RETRY_SECONDS", defaults.kind_limit_retry_seconds,
                                        0.05, 60),
    )
    if settings.db_pool_min > settings.db_pool_max:
        raise SettingsError(f"DB_POOL_MIN ({settings.db_pool_min}) must not exceed DB_POOL_MAX "
                            f"({settings.db_pool_max})")
    if not KIND_PATTERN.fullmatch(settings.default_kind):
        raise SettingsError("DEFAULT_KIND must be 1-100 letters, digits or _ . : -")
    return settings
