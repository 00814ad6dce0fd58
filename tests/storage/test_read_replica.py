"""SHULIAN_DB_READ: proofs, roots and entry scans read a read-only replica, but only what the primary has
sealed and the replica holds; a lagging, absent or foreign replica never answers (the primary does).

The replica is a real read-only connection: on SQLite a ``mode=ro`` URI of a consistent copy of the
ledger file, on PostgreSQL a schema holding a copy of the ledger tables, read through a connection with
``default_transaction_read_only``. Copying at size N and appending afterwards makes it lag, as a
streaming replica does.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from api.node import Node
from audit.sources import verify_database
from ledger import schema
from ledger.log import LogReader
from ledger.store import StorageError, Store, pool_settings
from ledger.tree import leaf_hash
from tests.conftest import pg_admin_url
from tests.support import register

LEDGER_TABLES = [schema.meta.name, schema.entries.name, schema.tree_nodes.name, schema.blocks.name]


def _pg_schema(url: str) -> str:
    options = make_url(url).query["options"]
    assert isinstance(options, str)
    return options.split("search_path=")[1].split(" ")[0]


@pytest.fixture
def replica_of(tmp_path: Path) -> Iterator[object]:
    """``replica_of(node)``: a read-only URL of a copy of ``node``'s ledger as it is now."""
    made: list[str] = []

    def copy(node: Node) -> str:
        url = node.store.url
        if node.store.is_sqlite:
            target = tmp_path / f"replica-{len(made)}.db"
            src = sqlite3.connect(make_url(url).database or "")
            dst = sqlite3.connect(target)
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # a read-only copy needs no WAL
            src.close()
            dst.close()
            made.append(str(target))
            return f"sqlite:///file:{target}?mode=ro&uri=true"
        source, name = _pg_schema(url), f"shulian_replica_{uuid.uuid4().hex[:12]}"
        admin = create_engine(pg_admin_url(), poolclass=NullPool)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
            for table in LEDGER_TABLES:
                conn.execute(text(f'CREATE TABLE "{name}".{table} (LIKE "{source}".{table} INCLUDING ALL)'))
                conn.execute(text(f'INSERT INTO "{name}".{table} SELECT * FROM "{source}".{table}'))
        admin.dispose()
        made.append(name)
        base = make_url(pg_admin_url()).render_as_string(hide_password=False)
        sep = "&" if "?" in base else "?"
        return f"{base}{sep}options=-csearch_path%3D{name}%20-cdefault_transaction_read_only%3Don"

    yield copy
    for name in made:
        if not name.endswith(".db"):
            admin = create_engine(pg_admin_url(), poolclass=NullPool)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
            admin.dispose()


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, stmt, *_a: seen.append(stmt))
    return seen


def _reads_nodes(statements: list[str]) -> bool:
    return any("tree_nodes" in s for s in statements)


def test_a_lagging_replica_serves_only_what_it_holds(node: Node, replica_of: object) -> None:
    for i in range(6):
        register(node, f"dept-{i}", "department")
    lagging = node.reader.size()
    replica_url = replica_of(node)  # type: ignore[operator]
    for i in range(5):
        register(node, f"late-{i}", "department")
    size = node.reader.size()
    assert size == lagging + 5
    with node.store.reader() as conn:
        leaf = Store.entry(conn, 3)
    assert leaf is not None
    h = leaf_hash(leaf)
    primary = node.reader

    store = Store(node.store.url, read_url=replica_url)
    try:
        reader = LogReader(store)
        seen = _statements(store.read_engine)
        # a size the replica holds: answered there, equal to the primary's answer
        assert reader.inclusion(h, lagging).hashes == primary.inclusion(h, lagging).hashes
        assert reader.consistency(2, lagging) == primary.consistency(2, lagging)
        assert reader.root(lagging) == primary.root(lagging)
        assert _reads_nodes(seen)
        # the newest size: the replica lags, so the primary answers (and the proof is for the newest)
        seen.clear()
        proof = reader.inclusion(h)
        assert proof.tree_size == size and proof.hashes == primary.inclusion(h, size).hashes
        assert reader.consistency(lagging, size) == primary.consistency(lagging, size)
        assert not _reads_nodes(seen)
        # a scan of every entry is never cut short by the replica
        assert [s for s, _ in store.iter_entries(0, size, chunk=4)] == list(range(size))
        assert [s for s, _ in store.iter_entries(chunk=4)] == list(range(size))
        heights = [height for height, _, _ in node.store.iter_blocks()]
        assert [height for height, _, _ in store.iter_blocks(chunk=3)] == heights == list(range(len(heights)))
        assert verify_database(store, progress=False).ok
    finally:
        store.close()


def test_a_replica_in_step_serves_the_newest_proofs_read_only(node: Node, replica_of: object) -> None:
    for i in range(4):
        register(node, f"dept-{i}", "department")
    size = node.reader.size()
    store = Store(node.store.url, read_url=replica_of(node))  # type: ignore[operator]
    try:
        seen = _statements(store.read_engine)
        with node.store.reader() as conn:
            leaf = Store.entry(conn, size - 1)
        assert leaf is not None
        proof = LogReader(store).inclusion(leaf_hash(leaf))
        assert (proof.seq, proof.tree_size) == (size - 1, size)
        assert proof.hashes == node.reader.inclusion(leaf_hash(leaf)).hashes
        assert _reads_nodes(seen)
        with pytest.raises(DBAPIError), store.read_engine.begin() as conn:  # the replica refuses writes
            conn.exec_driver_sql("INSERT INTO ledger_meta (name, value) VALUES ('x', 'y')")
    finally:
        store.close()


def test_a_replica_of_another_ledger_or_none_at_all_never_answers(
    sqlite_url: str, shulian_home: Path, tmp_path: Path, replica_of: object
) -> None:
    node = Node(sqlite_url, shulian_home)
    node.init(origin="test.shulian.example/log")
    other = Node(f"sqlite:///{tmp_path / 'other.db'}", shulian_home)
    other.init(origin="other.example/log")
    for i in range(5):
        register(other, f"o-{i}", "department")
    foreign = replica_of(other)  # type: ignore[operator]
    other.close()
    with node.store.reader() as conn:
        leaf = Store.entry(conn, 1)
    assert leaf is not None
    want = node.reader.inclusion(leaf_hash(leaf)).hashes
    for url in (foreign, f"sqlite:///file:{tmp_path / 'absent.db'}?mode=ro&uri=true"):
        store = Store(node.store.url, read_url=url)
        try:
            seen = _statements(store.read_engine)
            assert LogReader(store).inclusion(leaf_hash(leaf)).hashes == want
            assert not _reads_nodes(seen)
        finally:
            store.close()
    node.close()


def test_pool_settings_from_the_environment() -> None:
    assert pool_settings({}) == pool_settings({"SHULIAN_DB_POOL_SIZE": ""})
    got = pool_settings(
        {
            "SHULIAN_DB_POOL_SIZE": "20",
            "SHULIAN_DB_POOL_OVERFLOW": "0",
            "SHULIAN_DB_POOL_TIMEOUT": "2.5",
            "SHULIAN_DB_POOL_RECYCLE": "-1",
            "SHULIAN_DB_POOL_PRE_PING": "false",
        }
    )
    assert (got.size, got.overflow, got.timeout, got.recycle, got.pre_ping) == (20, 0, 2.5, -1, False)
    for name, value in (("SIZE", "0"), ("OVERFLOW", "many"), ("RECYCLE", "-2"), ("PRE_PING", "maybe")):
        with pytest.raises(StorageError, match=f"SHULIAN_DB_POOL_{name}"):
            pool_settings({f"SHULIAN_DB_POOL_{name}": value})


@pytest.mark.pg
def test_postgresql_engines_take_the_pool_settings(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHULIAN_DB_POOL_SIZE", "3")
    monkeypatch.setenv("SHULIAN_DB_POOL_OVERFLOW", "1")
    monkeypatch.setenv("SHULIAN_DB_POOL_RECYCLE", "60")
    store = Store(pg_url)
    try:
        pool = store.engine.pool
        assert (pool.size(), pool._max_overflow, pool._recycle, pool._pre_ping) == (3, 1, 60, True)  # type: ignore[attr-defined]
        assert store._writer_engine.pool._pre_ping is False  # type: ignore[attr-defined]
        with store.reader() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        store.close()
