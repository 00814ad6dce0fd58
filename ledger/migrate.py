"""The database schema's migrations (Alembic scripts in ``ledger/migrations/``), for both engines.

Tables, indexes and triggers are created and changed only here. ``upgrade`` runs under a lock so
that several processes starting at once migrate once: on PostgreSQL a transaction-level advisory
lock, on SQLite the write lock that ``BEGIN IMMEDIATE`` takes. DDL is transactional in both
engines, so a failed migration leaves the database at the revision it had.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import MetaData

from ledger.errors import LedgerError

SCRIPTS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
# alembic announces each autogenerate plugin at INFO when imported: noise in a server's logs
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
MIGRATION_LOCK_ID = 0x5348554C4D4947  # "SHULMIG": apart from the writer lock


class MigrationError(LedgerError):
    """A migration could not run (unknown revision, a database that refuses, a refused downgrade)."""

    status = 503
    title = "Database migration failed"


def service_metadata() -> MetaData:
    """Every table the service uses (the models), what a migrated database must match."""
    import api.index
    import api.tables
    from api.witnesses import witness_state
    from ledger import schema

    out = MetaData()
    for table in [*schema.metadata.tables.values(), *api.tables.metadata.tables.values(), witness_state]:
        table.to_metadata(out)
    return out


@functools.cache
def script() -> ScriptDirectory:
    return ScriptDirectory(str(SCRIPTS))


def head() -> str:
    rev = script().get_current_head()
    assert rev is not None
    return rev


def current(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    try:
        with engine.connect() as conn:  # read directly: alembic's MigrationContext logs at INFO each time
            if not inspect(conn).has_table(VERSION_TABLE):
                return None
            rev = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar()  # noqa: S608
            return None if rev is None else str(rev)
    except SQLAlchemyError as exc:
        raise MigrationError(f"cannot read the schema revision: {_reason(exc)}") from exc


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the migration lock (commits on success)."""
    with engine.connect() as conn, conn.begin():  # SQLite writer engines begin IMMEDIATE
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        yield conn


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default the newest); does nothing when already there.

    For SQLite pass a writer engine (``make_engine(url, writer=True)``), whose transactions take the
    write lock at BEGIN.
    """
    if revision == "head" and current(engine) == head():
        return
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision`` (``base``: nothing; refused while the ledger holds entries)."""
    _run(engine, command.downgrade, revision)


def _run(engine: Engine, action: Any, revision: str) -> None:
    try:
        with locked(engine) as conn:
            config = Config()
            config.set_main_option("script_location", str(SCRIPTS))
            config.attributes["connection"] = conn
            action(config, revision)
    except SQLAlchemyError as exc:
        raise MigrationError(f"migration to {revision} failed: {_reason(exc)}") from exc
    except Exception as exc:  # alembic's CommandError, a revision's own refusal
        if type(exc).__module__.startswith(("alembic", "ledger.migrations")) or isinstance(exc, RuntimeError):
            raise MigrationError(f"migration to {revision} failed: {exc}") from exc
        raise


def run_environment(context: Any) -> None:
    """The body of ``migrations/env.py``: configure alembic on the connection passed in, or on SHULIAN_DB."""
    conn = context.config.attributes.get("connection")
    if conn is not None:  # ``upgrade``/``downgrade``: no autogenerate, so no models to import
        _configure_and_run(context, conn, None)
        return
    from ledger.store import DEFAULT_DB, make_engine

    engine = make_engine(os.environ.get("SHULIAN_DB") or DEFAULT_DB, writer=True)
    try:
        with locked(engine) as conn:
            _configure_and_run(context, conn, service_metadata())
    finally:
        engine.dispose()


def _configure_and_run(context: Any, conn: Connection, models: MetaData | None) -> None:
    context.configure(
        connection=conn,
        target_metadata=models,
        render_as_batch=conn.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return " ".join(str(orig or exc).split())
