"""What a database failure means for a client: unreachable (503), read-only (503) or out of space (507).

The cause is found by walking an exception's chain (``__cause__``, ``__context__`` and SQLAlchemy's
``orig``) down to the driver's error: SQLite's result code, PostgreSQL's SQLSTATE. The details stay
in the server's log; the client learns what happened and when to retry, never a host or a port.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from ledger.store import StorageError

# SQLite result codes (https://sqlite.org/rescode.html)
SQLITE_READONLY = 8
SQLITE_FULL = 13
SQLITE_IOERR_WRITE = 778  # a write refused by the OS: EFBIG past RLIMIT_FSIZE, EIO, …
# PostgreSQL SQLSTATEs: class 53 (insufficient resources) and read-only transactions
PG_DISK_FULL = "53100"
PG_READ_ONLY = "25006"

_PSYCOPG_UNAVAILABLE = ("OperationalError", "InterfaceError")
STORAGE_RETRY_AFTER_SECONDS = 30  # space is freed by an operator, not in a second


@dataclass(frozen=True, slots=True)
class DatabaseFault:
    status: int
    title: str
    detail: str
    retry_after: int


UNAVAILABLE = DatabaseFault(
    503, "Database unavailable", "the ledger database is unavailable; nothing was written; retry later", 1
)
READ_ONLY = DatabaseFault(
    503, "Database read-only", "the ledger database is read-only; nothing was written; retry later", 1
)
FULL = DatabaseFault(
    507,
    "Insufficient Storage",
    "the ledger's storage is full or refuses writes; nothing was written; retry later",
    STORAGE_RETRY_AFTER_SECONDS,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None)
        todo.extend([e.__context__, e.__cause__, orig if isinstance(orig, BaseException) else None])


def database_fault(exc: BaseException) -> DatabaseFault | None:
    """The fault ``exc`` stands for, or None if it is not a database failure."""
    is_db = False
    for e in _chain(exc):
        if isinstance(e, sqlite3.Error):
            code = getattr(e, "sqlite_errorcode", None)
            if code in (SQLITE_FULL, SQLITE_IOERR_WRITE):
                return FULL
            if code is not None and code & 0xFF == SQLITE_READONLY:
                return READ_ONLY
            is_db = is_db or isinstance(e, sqlite3.OperationalError)  # not a constraint: a bug of ours
        sqlstate = getattr(e, "sqlstate", None)
        if isinstance(sqlstate, str):  # psycopg
            if sqlstate == PG_DISK_FULL:
                return FULL
            if sqlstate == PG_READ_ONLY:
                return READ_ONLY
        driver = type(e).__module__.split(".")[0] == "psycopg" and any(
            c.__name__ in _PSYCOPG_UNAVAILABLE for c in type(e).__mro__
        )
        if driver or isinstance(e, StorageError | OperationalError | DisconnectionError | InterfaceError):
            is_db = True
    return UNAVAILABLE if is_db else None
