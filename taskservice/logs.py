"""Logging set-up: one line per event, as text or JSON, carrying the context of the work at hand."""

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

import orjson
from aiohttp.http_exceptions import HttpProcessingError

_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

# The fields (request_id; task_id and attempt) of the request or attempt being handled.
# A ContextVar rather than a parameter: it reaches every log call, ours and the libraries',
# without plumbing, and asyncio copies it into the tasks started from there (a handler's task),
# while concurrent requests and attempts, each in its own task, never see each other's.
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("log_context", default=MappingProxyType({}))


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` to every log line emitted inside the block (and in tasks started from it)."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current log context onto each record; an explicit `extra=` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class QuietBadRequests(logging.Filter):
    """One info line, no traceback, for a request aiohttp could not parse.

    aiohttp logs those as ERROR with a traceback, yet a bad request line or header is
    the client's mistake, already answered with 400. Only the error's class is kept:
    its message can quote the raw header bytes, which may hold a credential.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.name == "aiohttp.server" and isinstance(error, HttpProcessingError):
            record.msg, record.args = "%s: %s", (record.getMessage(), type(error).__name__)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
            # The logger let it through as an ERROR; as INFO it must pass the level again.
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


def _context_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    """timestamp, level, logger, message, plus the context (`extra=` and log_context)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_context_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value ...`, the context as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = " ".join(f"{k}={v}" for k, v in _context_fields(record).items())
        return f"{line} {context}" if context else line


def log_handler(fmt: str, stream: TextIO = sys.stderr) -> logging.Handler:
    """The handler every process logs through: `fmt` is "json" or "text"."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # On the handler, not a logger: a logger's filters skip records propagated from its children.
    handler.addFilter(ContextFilter())
    handler.addFilter(QuietBadRequests())
    return handler


def configure_logging(level: str, fmt: str) -> None:
    logging.basicConfig(level=level.upper(), handlers=[log_handler(fmt)], force=True)
