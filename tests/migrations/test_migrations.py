"""The schema comes only from the Alembic migrations, on SQLite and PostgreSQL: an empty database upgraded
to head matches the models exactly, the append-only triggers hold, a round trip down and up again gives
the same schema, a ledger is never downgraded away, a database made before migrations is adopted, and
two processes migrating one database at once both succeed with one migration."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from api.cli import main
from api.node import Node
from ledger import migrate, schema
from ledger.store import Store, make_engine


def _diff(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, migrate.service_metadata()))


def _tables(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_upgrade_of_an_empty_database_matches_the_models(empty_url: str) -> None:
    store = Store(empty_url)
    try:
        assert migrate.current(store.engine) is None
        store.create_schema()
        assert migrate.current(store.engine) == migrate.head()
        assert _diff(store) == []
        assert _tables(store) == {*migrate.service_metadata().tables, "alembic_version"}
    finally:
        store.close()


def test_triggers_refuse_update_and_delete_after_migration(empty_url: str) -> None:
    store = Store(empty_url)
    try:
        store.create_schema()
        with store.writer() as conn:
            Store.insert(conn, schema.meta, [{"name": "origin", "value": "o"}])
            conn.execute(
                schema.entries.insert(),
                [{"seq": 0, "leaf": b"{}", "leaf_hash": bytes(32), "type": "t", "actor": "a", "ts": "x", "height": 0}],
            )
        refused = [
            "UPDATE ledger_meta SET value = 'p' WHERE name = 'origin'",
            "DELETE FROM ledger_meta",
            "UPDATE entries SET type = 'u' WHERE seq = 0",
            "DELETE FROM entries WHERE seq = 0",
        ]
        if store.is_sqlite:  # REPLACE deletes the old row without firing DELETE triggers
            refused.append("INSERT OR REPLACE INTO ledger_meta (name, value) VALUES ('origin', 'p')")
        else:
            refused.append("TRUNCATE entries")
        for statement in refused:
            with pytest.raises(DBAPIError, match="append-only"), store.write_engine.begin() as conn:
                conn.exec_driver_sql(statement)
        with store.reader() as conn:
            assert Store.meta(conn) == {"origin": "o"}
            assert Store.entry_count(conn) == 1
    finally:
        store.close()


def test_round_trip_down_to_base_and_up_again(empty_url: str) -> None:
    store = Store(empty_url)
    try:
        migrate.upgrade(store.write_engine)
        migrate.downgrade(store.write_engine, "base")
        assert migrate.current(store.engine) is None
        assert _tables(store) <= {"alembic_version"}
        migrate.upgrade(store.write_engine)
        assert migrate.current(store.engine) == migrate.head()
        assert _diff(store) == []
    finally:
        store.close()


def test_a_ledger_is_never_downgraded_away(node: Node) -> None:
    before = node.reader.checkpoint()
    with pytest.raises(migrate.MigrationError, match="ledger holds entries"):
        migrate.downgrade(node.store.write_engine, "base")
    assert migrate.current(node.store.engine) == migrate.head()
    assert node.reader.checkpoint() == before


def test_a_database_made_before_migrations_is_adopted(empty_sqlite: str, shulian_home: Path) -> None:
    """Tables created from the models directly (as before migrations existed), with an index nothing
    reads any more: upgrade stamps it, adds the triggers, drops the stale index, keeps every row."""
    engine = make_engine(empty_sqlite, writer=True)
    with engine.begin() as conn:
        migrate.service_metadata().create_all(conn)
        conn.exec_driver_sql("CREATE INDEX ix_entries_actor ON entries (actor)")
        conn.exec_driver_sql("INSERT INTO ledger_meta (name, value) VALUES ('origin', 'old.example/log')")
    engine.dispose()
    store = Store(empty_sqlite)
    try:
        store.create_schema()
        assert migrate.current(store.engine) == migrate.head()
        assert _diff(store) == []
        with store.reader() as conn:
            assert Store.meta(conn) == {"origin": "old.example/log"}
        with pytest.raises(DBAPIError, match="append-only"), store.write_engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM ledger_meta")
    finally:
        store.close()


_UPGRADE = "import sys; from ledger.store import Store; Store(sys.argv[1]).create_schema(); print('done')"


def test_two_processes_migrating_at_once_both_succeed(empty_url: str) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", _UPGRADE, empty_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-500:] for o in outs]
    store = Store(empty_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [migrate.head()]
        assert _diff(store) == []
    finally:
        store.close()


def test_db_commands(empty_sqlite: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", empty_sqlite, "db", "current"]) == 0
    assert capsys.readouterr().out.startswith(f"empty (no schema); newest revision {migrate.head()}")
    assert main(["--db", empty_sqlite, "db", "upgrade"]) == 0
    assert capsys.readouterr().out.strip() == f"schema at {migrate.head()} (was empty)"
    assert main(["--db", empty_sqlite, "db", "upgrade"]) == 0
    assert capsys.readouterr().out.strip() == f"schema at {migrate.head()}"
    assert main(["--db", empty_sqlite, "db", "current"]) == 0
    assert capsys.readouterr().out.strip() == f"{migrate.head()} (head)"
    assert main(["--db", empty_sqlite, "db", "upgrade", "--to", "nosuchrev"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("shulian db upgrade: migration to nosuchrev failed:") and "\n" not in err


@pytest.mark.parametrize("found", ["0000_older", None])
def test_serve_refuses_a_schema_it_does_not_serve(
    node: Node, found: str | None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at another revision (or made before migrations) is not served: one line, exit 1."""
    monkeypatch.setenv("SHULIAN_ENV", "development")
    # serve configures logging before it opens the database: put back what pytest had afterwards
    saved = {name: (lg.handlers[:], lg.level, lg.propagate) for name, lg in _loggers().items()}
    try:
        _refused(node, found, capsys)
    finally:
        for name, lg in _loggers().items():
            lg.handlers[:], level, lg.propagate = saved.get(name, ([], logging.NOTSET, True))
            lg.setLevel(level)


def _loggers() -> dict[str, logging.Logger]:
    named = {n: lg for n, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    return {"": logging.getLogger(), **named}


def _refused(node: Node, found: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with node.store.write_engine.begin() as conn:
        if found is None:
            conn.exec_driver_sql("DROP TABLE alembic_version")
        else:
            conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{found}'")
    url = node.store.url
    node.close()
    assert main(["--db", url, "serve", "--port", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("shulian serve: the database schema is at revision")
    assert (found or "made before migrations") in err and "run `shulian db upgrade` first" in err
    if found is None:  # a database made before migrations: the way out it names
        assert main(["--db", url, "db", "upgrade"]) == 0
        store = Store(url)
        try:
            assert migrate.current(store.engine) == migrate.head()
        finally:
            store.close()
