"""api.dbfaults on real driver errors: what a client is told for each kind of database failure."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

from api.dbfaults import FULL, READ_ONLY, UNAVAILABLE, database_fault
from ledger.store import StorageError
from tests.api.conftest import free_port


def _raised(fn: object) -> BaseException:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:  # the error under test
        return exc
    raise AssertionError("nothing raised")


def test_sqlite_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", poolclass=NullPool)

    def write() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))

    exc = _raised(write)
    assert isinstance(exc, OperationalError)
    assert database_fault(exc) is READ_ONLY
    wrapped = StorageError(f"database unavailable: {exc}")
    wrapped.__cause__ = exc
    assert database_fault(wrapped) is READ_ONLY  # found through the chain


def test_unreachable_server_and_what_is_not_a_fault() -> None:
    engine = create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x",
        poolclass=NullPool,
        connect_args={"connect_timeout": 2},
    )
    exc = _raised(engine.connect)
    assert isinstance(exc, OperationalError)
    assert database_fault(exc) is UNAVAILABLE
    assert "127.0.0.1" not in UNAVAILABLE.detail
    # a constraint refusing a row is a bug of ours, not a database outage
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1)")
    clash = _raised(lambda: conn.execute("INSERT INTO t VALUES (1)"))
    assert database_fault(IntegrityError("INSERT", {}, clash)) is None  # type: ignore[arg-type]
    assert database_fault(ValueError("not a database error")) is None


@pytest.mark.parametrize("code", [sqlite3.SQLITE_FULL, 778])  # SQLITE_IOERR_WRITE: EFBIG past RLIMIT_FSIZE
def test_sqlite_out_of_space_codes(code: int) -> None:
    exc = sqlite3.OperationalError("database or disk is full")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    assert database_fault(exc) is FULL and FULL.status == 507


def test_postgresql_sqlstates() -> None:
    import psycopg.errors

    assert database_fault(psycopg.errors.DiskFull("no space left on device")) is FULL
    assert database_fault(psycopg.errors.ReadOnlySqlTransaction("read-only transaction")) is READ_ONLY
    assert database_fault(psycopg.errors.AdminShutdown("terminating connection")) is UNAVAILABLE
    assert database_fault(psycopg.errors.UniqueViolation("duplicate key")) is None
