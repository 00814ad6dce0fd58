"""Logs: one JSON object a line (or plain text in development), with the request's id and caller.

The request context is a small dict in a context variable, set by the edge middleware for each
request and filled in as the request goes (``annotate(key_id=…)`` once the signature verifies);
every record logged while the request runs carries its ``request_id``.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["json", "text"]
ACCESS_LOGGER = "shulian.access"
# X-Request-ID values taken as given: printable, no spaces, at most 128 characters; others replaced.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_FIELDS = ("request_id", "method", "path", "status", "duration_ms", "key_id", "client")

_context: ContextVar[dict[str, Any] | None] = ContextVar("shulian_request", default=None)


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID when it is well-formed, else a new random one."""
    if header is not None and REQUEST_ID_RE.fullmatch(header):
        return header
    return secrets.token_hex(16)


def begin_request(**fields: Any) -> dict[str, Any]:
    """Start the context of a request (the edge middleware calls this first)."""
    context = dict(fields)
    _context.set(context)
    return context


def current() -> dict[str, Any]:
    return _context.get() or {}


def current_request_id() -> str | None:
    value = current().get("request_id")
    return str(value) if value is not None else None


def annotate(**fields: Any) -> None:
    """Add fields (e.g. ``key_id``) to the running request's context; a no-op outside a request."""
    context = _context.get()
    if context is not None:
        context.update(fields)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request's fields, any exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = current()
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = context.get(name) if name in ("request_id", "key_id") else None
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message [request_id]``, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None) or current().get("request_id")
        return f"{line} [{rid}]" if rid else line


def log_config(fmt: LogFormat, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service and uvicorn (each worker applies it)."""
    formatter = "api.logs.JsonFormatter" if fmt == "json" else "api.logs.TextFormatter"
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"shulian": {"()": formatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "shulian", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own handlers are replaced by ours; its access log by shulian.access.
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            # alembic names each autogenerate plugin at INFO when first imported (serve checks the schema)
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure(fmt: LogFormat, level: str) -> None:
    logging.config.dictConfig(log_config(fmt, level))
