"""Shared fixtures: a clean SHULIAN_HOME, a ledger URL on each engine, an initialised node.

``ledger_url`` is parametrised over SQLite (a file in ``tmp_path``) and PostgreSQL (a fresh schema
per test in the database named by ``SHULIAN_TEST_PG``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; dropped with CASCADE afterwards). When no
PostgreSQL server answers, the PostgreSQL half is skipped with one line saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

import keys.keystore
from api.node import Node
from ledger import migrate
from ledger.store import make_engine

PASSPHRASE = "shulian test passphrase"
DEFAULT_TEST_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# Cheap Argon2id for keystores written by tests (the parameters are stored in each file, so files
# written with them open anywhere); the keystore tests check the real parameters separately.
FAST_ARGON2 = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}

_pg_status: dict[str, str | None] = {}


def pg_admin_url() -> str:
    return os.environ.get("SHULIAN_TEST_PG") or DEFAULT_TEST_PG


def pg_unavailable() -> str | None:
    """None if the test PostgreSQL server answers, else one line saying why not (checked once)."""
    if "reason" not in _pg_status:
        url = pg_admin_url()
        try:
            engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_status["reason"] = None
        except (SQLAlchemyError, OSError) as exc:
            where = make_url(url).render_as_string(hide_password=True)
            _pg_status["reason"] = f"PostgreSQL not reachable at {where} ({type(exc).__name__}); set SHULIAN_TEST_PG"
    return _pg_status["reason"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_kdf: use the keystore's real Argon2id parameters")


@pytest.fixture
def shulian_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SHULIAN_HOME with a fixed passphrase and no stray SHULIAN_* settings."""
    home = tmp_path / "home"
    for name in ("SHULIAN_PASSPHRASE_FILE", "SHULIAN_DB", "SHULIAN_DB_READ", "SHULIAN_ORIGIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHULIAN_HOME", str(home))
    monkeypatch.setenv("SHULIAN_PASSPHRASE", PASSPHRASE)
    monkeypatch.setattr(keys.keystore, "ARGON2", dict(FAST_ARGON2))
    return home


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database upgraded to the newest migration, made once per test process."""
    path = tmp_path_factory.mktemp("migrated") / "ledger.db"
    engine = make_engine(f"sqlite:///{path}", writer=True)
    migrate.upgrade(engine)
    engine.dispose()  # the last connection closed: the WAL is folded into the file
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite: Path) -> str:
    """A SQLite ledger file holding the schema and no ledger yet (a copy of ``migrated_sqlite``)."""
    target = tmp_path / "ledger.db"
    shutil.copyfile(migrated_sqlite, target)
    return f"sqlite:///{target}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema in the test PostgreSQL database (dropped afterwards)."""
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    admin = create_engine(pg_admin_url(), poolclass=NullPool)
    schema = f"shulian_test_{uuid.uuid4().hex[:16]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    base = make_url(pg_admin_url()).render_as_string(hide_password=False)
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def ledger_url(request: pytest.FixtureRequest) -> str:
    """A database URL for an empty ledger, once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def node(ledger_url: str, shulian_home: Path) -> Iterator[Node]:
    """An initialised node (schema, log key, genesis admin and service key) on ``ledger_url``."""
    n = Node(ledger_url, shulian_home)
    n.init(origin="test.shulian.example/log")
    try:
        yield n
    finally:
        n.close()


@pytest.fixture()
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (witnesses, servers, monitors); those still running at its end are stopped."""
    from tests.witness.test_processes import stop

    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            stop(p)
