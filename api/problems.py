"""RFC 9457 problem responses: every error the API returns, in one place."""

from __future__ import annotations

import logging
import sqlite3
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, DisconnectionError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.dbfaults import database_fault
from api.logs import current_request_id
from keys.errors import KeystoreError
from ledger.errors import LedgerError
from ledger.store import StorageError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("shulian.api")


def problem(
    status: int, detail: str, *, title: str | None = None, retry_after: int | None = None, **extra: Any
) -> JSONResponse:
    """A problem+json response with ``type`` about:blank, the status's title and the request's id."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    request_id = current_request_id()
    if request_id is not None:
        body["request_id"] = request_id  # RFC 9457 extension member: the X-Request-ID of the request
    if retry_after is None and status == 503:
        retry_after = 1
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


PROBLEM_SCHEMA: dict[str, Any] = {
    "description": "An RFC 9457 problem",
    "content": {
        PROBLEM_JSON: {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "request_id": {"type": "string"},
                },
                "required": ["type", "title", "status", "detail"],
            },
            "example": {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "size 9 outside 1..4"},
        }
    },
}


# the driver's and SQLAlchemy's errors wherever a route meets them outside the Store's wrappers
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, DisconnectionError, sqlite3.Error, psycopg.Error)


def problem_for(exc: Exception) -> JSONResponse | None:
    """The problem response for an error the service knows (None for anything else: a bug, a 500)."""
    if isinstance(exc, StorageError):
        return _database_problem(exc)
    if isinstance(exc, LedgerError):
        return problem(
            exc.status, str(exc), title=getattr(exc, "title", None), retry_after=getattr(exc, "retry_after", None)
        )
    if isinstance(exc, KeystoreError):
        log.error("keystore: %s", exc)
        return problem(503, "the service's keys are unavailable")
    if isinstance(exc, DATABASE_ERRORS):
        return _database_problem(exc)
    return None


def install(app: FastAPI) -> None:
    """Map every error to a problem response; nothing escapes as a bare 500 with a traceback."""

    async def _known(_: Request, exc: Exception) -> JSONResponse:
        response = problem_for(exc)
        assert response is not None  # registered for the known types only
        return response

    known: tuple[type[Exception], ...] = (LedgerError, KeystoreError, *DATABASE_ERRORS)
    for exc_type in known:
        app.add_exception_handler(exc_type, _known)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem(400, f"{where}: {first.get('msg', 'invalid request')}", errors=len(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return problem(500, "internal error; the request changed nothing that was not committed")


def _database_problem(exc: Exception) -> JSONResponse:
    """503 (unreachable, read-only) or 507 (out of space) with Retry-After; the cause only in the log."""
    fault = database_fault(exc)
    if fault is None:  # a database error that is no fault of the database (a constraint): a bug
        log.error("unexpected database error", exc_info=exc)
        return problem(500, "internal error; the request changed nothing that was not committed")
    log.warning("database: %s", " ".join(str(exc).split()))
    response = problem(fault.status, fault.detail, title=fault.title)
    response.headers["Retry-After"] = str(fault.retry_after)
    return response
