"""The database itself refuses to change the ledger: UPDATE, DELETE (and TRUNCATE, REPLACE) are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.node import Node
from tests.support import check_ledger, counts, record_entry, register

STATEMENTS = {
    "entries": [
        "UPDATE entries SET type = 'record.commit' WHERE seq = 0",
        "UPDATE entries SET leaf = leaf",
        "DELETE FROM entries WHERE seq = (SELECT max(seq) FROM entries)",
        "DELETE FROM entries",
    ],
    "tree_nodes": [
        "UPDATE tree_nodes SET hash = hash WHERE level = 0 AND idx = 0",
        "DELETE FROM tree_nodes WHERE level = 0",
        "DELETE FROM tree_nodes",
    ],
    "blocks": [
        "UPDATE blocks SET checkpoint = checkpoint || '' WHERE height = 0",
        "DELETE FROM blocks WHERE height = (SELECT max(height) FROM blocks)",
        "DELETE FROM blocks",
    ],
    "ledger_meta": [
        "UPDATE ledger_meta SET value = 'evil.example/log' WHERE name = 'origin'",
        "DELETE FROM ledger_meta WHERE name = 'log_key'",
        "DELETE FROM ledger_meta",
    ],
}


def _params() -> list[object]:
    return [pytest.param(sql, id=sql[:60]) for stmts in STATEMENTS.values() for sql in stmts]


@pytest.fixture
def filled(node: Node) -> Node:
    dept = register(node, "dept", "department")
    for i in range(5):
        node.append(record_entry(dept, i))
    return node


@pytest.mark.parametrize("sql", _params())
def test_update_and_delete_are_refused(filled: Node, ledger_url: str, sql: str) -> None:
    before = counts(filled.store)
    with pytest.raises(DBAPIError, match="append-only"), filled.store.engine.begin() as conn:
        conn.execute(text(sql))
    assert counts(filled.store) == before
    check_ledger(ledger_url)


@pytest.mark.parametrize("table", sorted(STATEMENTS))
def test_replace_is_refused(filled: Node, ledger_url: str, table: str) -> None:
    """An insert that collides with a stored row may not replace it (SQLite's INSERT OR REPLACE, upserts)."""
    before = counts(filled.store)
    with filled.store.engine.connect() as conn:
        row = conn.execute(text(f"SELECT * FROM {table} LIMIT 1")).mappings().one()
    cols = ", ".join(row)
    params = ", ".join(f":{c}" for c in row)
    if filled.store.is_sqlite:
        statements = [
            f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({params})",
            f"REPLACE INTO {table} ({cols}) VALUES ({params})",
        ]
    else:
        key = {"entries": "seq", "tree_nodes": "level, idx", "blocks": "height", "ledger_meta": "name"}[table]
        first = next(iter(row))
        upsert = f"ON CONFLICT ({key}) DO UPDATE SET {first} = EXCLUDED.{first}"
        statements = [f"INSERT INTO {table} ({cols}) VALUES ({params}) {upsert}"]
    for sql in statements:
        with pytest.raises(DBAPIError), filled.store.engine.begin() as conn:
            conn.execute(text(sql), dict(row))
    assert counts(filled.store) == before
    check_ledger(ledger_url)


def test_truncate_is_refused_on_postgresql(filled: Node, ledger_url: str) -> None:
    if filled.store.is_sqlite:
        pytest.skip("SQLite has no TRUNCATE (DELETE FROM without WHERE is covered above)")
    before = counts(filled.store)
    for table in STATEMENTS:
        with pytest.raises(DBAPIError, match="append-only"), filled.store.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {table} CASCADE"))
    assert counts(filled.store) == before
    check_ledger(ledger_url)


def test_appends_still_work_after_refusals(filled: Node, ledger_url: str) -> None:
    for sql in (STATEMENTS["entries"][0], STATEMENTS["blocks"][1]):
        with pytest.raises(DBAPIError), filled.store.engine.begin() as conn:
            conn.execute(text(sql))
    dept = filled.local_key("admin")
    assert dept is not None
    before = counts(filled.store)
    register(filled, "late", "citizen")
    assert counts(filled.store).entries == before.entries + 1
    check_ledger(ledger_url)
