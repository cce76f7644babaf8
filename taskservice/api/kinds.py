"""What the API knows about kinds: the defaults a create takes, payload checks, how GET /api/v1/kinds
shows a kind.

The API knows the built-in kinds and those of HANDLER_MODULES, when they are importable
in the API process too (taskservice.handlers.load_registry). A kind it does not know is
accepted as before (the workers may know it), unless REJECT_UNKNOWN_KINDS is set.
"""

from collections.abc import Mapping
from typing import Any

from apispec.ext.marshmallow import OpenAPIConverter
from marshmallow import Schema, ValidationError

from taskservice import tasks
from taskservice.api import schemas
from taskservice.kinds import Kind
from taskservice.settings import Settings


def create_fields(body: Mapping[str, Any], kinds: Mapping[str, Kind], settings: Settings) -> dict[str, Any]:
    """The task's kind, priority, max_attempts, timeout_seconds and queue: as sent, else the kind's
    defaults, else the global ones. ValidationError (keyed like the body) for an unknown kind
    under REJECT_UNKNOWN_KINDS, or a payload the kind's schema refuses."""
    name = body["kind"] or settings.default_kind
    kind = kinds.get(name)
    if kind is None and settings.reject_unknown_kinds:
        raise ValidationError({"kind": [f"Unknown kind {name!r}; GET /api/v1/kinds lists the known ones."]})
    if kind is not None and kind.payload_schema is not None:
        errors = kind.payload_schema.validate(body["payload"])
        if errors:
            raise ValidationError({"payload": errors})
    return {
        "kind": name,
        "priority": body.get("priority") or default(kind, "priority", schemas.DEFAULT_PRIORITY),
        "max_attempts": body.get("max_attempts") or default(kind, "max_attempts", schemas.DEFAULT_MAX_ATTEMPTS),
        "timeout_seconds": body.get("timeout_seconds") or default(kind, "timeout_seconds",
                                                                  settings.default_timeout_seconds),
        # Only when not the default, so that fingerprints of earlier creates stay valid.
        **({"queue": queue} if (queue := body.get("queue") or default(kind, "queue", tasks.DEFAULT_QUEUE))
           != tasks.DEFAULT_QUEUE else {}),
    }


def default(kind: Kind | None, option: str, fallback: Any) -> Any:
    value = None if kind is None else getattr(kind, option)
    return fallback if value is None else value


def describe(kind: Kind, settings: Settings) -> dict[str, Any]:
    return {
        "kind": kind.name,
        "executor": kind.executor,
        "priority": default(kind, "priority", schemas.DEFAULT_PRIORITY),
        "max_attempts": default(kind, "max_attempts", schemas.DEFAULT_MAX_ATTEMPTS),
        "timeout_seconds": default(kind, "timeout_seconds", settings.default_timeout_seconds),
        "queue": default(kind, "queue", tasks.DEFAULT_QUEUE),
        "concurrency": kind.concurrency,
        "rate": None if kind.rate is None else str(kind.rate),
        "payload_schema": None if kind.payload_schema is None else json_schema(kind.payload_schema),
    }


def json_schema(schema: Schema) -> dict[str, Any]:
    # No spec and no names: nested schemas are written out in place, so each stands alone.
    return OpenAPIConverter("3.0.3", lambda _schema: None, None).schema2jsonschema(schema)
