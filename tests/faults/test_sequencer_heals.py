"""A sequencer whose commit dies with its database connection heals on the next append: no gap, no duplicate.

In-process, on the private PostgreSQL cluster: the writer's own session is terminated in the middle
of its transaction (after the entries are written, before COMMIT), and the whole server is stopped
and started again; each time the failed append is refused with a storage error (503), nothing of it
is stored, and the next append takes the next seq on a fresh connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from api.dbfaults import UNAVAILABLE, database_fault
from api.node import Node
from ledger.store import StorageError
from ledger.tree import leaf_hash
from tests.faults.conftest import PrivateCluster, ledger_size
from tests.support import audit_verify, check_ledger, record_entry, register


@pytest.fixture
def pg_node(private_pg: PrivateCluster, shulian_home: Path) -> Iterator[tuple[Node, str]]:
    db = private_pg.create_database(f"heal_{uuid.uuid4().hex[:8]}")
    node = Node(db, shulian_home)
    node.init(origin="faults.shulian.example/log")
    try:
        yield node, db
    finally:
        node.close()


def _kill_own_session(conn: Connection, _seqs: list[int]) -> None:
    conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))


@pytest.mark.pg
def test_commit_cut_mid_transaction_heals(pg_node: tuple[Node, str]) -> None:
    node, db = pg_node
    dept = register(node, f"heal-{uuid.uuid4().hex[:6]}", "department")
    before = node.append(record_entry(dept, 0))
    doomed = record_entry(dept, 1)
    with pytest.raises(StorageError) as refused:
        node.sequencer.append(doomed, attach=_kill_own_session)
    assert database_fault(refused.value) is UNAVAILABLE
    assert ledger_size(db) == before.seq + 1  # nothing of the cut transaction is stored
    again = node.append(doomed)  # the same envelope, now on a fresh connection
    assert again.seq == before.seq + 1 and again.leaf_hash == leaf_hash(doomed)
    after = node.append(record_entry(dept, 2))
    assert after.seq == again.seq + 1
    summary = check_ledger(db)
    assert summary.size == after.seq + 1
    assert audit_verify(db, summary.size)


@pytest.mark.pg
def test_database_restart_between_appends_heals(private_pg: PrivateCluster, pg_node: tuple[Node, str]) -> None:
    node, db = pg_node
    dept = register(node, f"heal-{uuid.uuid4().hex[:6]}", "department")
    first = node.append(record_entry(dept, 0))
    private_pg.stop("immediate")  # a crash: every pooled connection is dead
    try:
        with pytest.raises(StorageError) as refused:
            node.append(record_entry(dept, 1))
        assert database_fault(refused.value) is UNAVAILABLE
    finally:
        private_pg.start()
    receipts = [node.append(record_entry(dept, i)) for i in range(1, 4)]
    assert [r.seq for r in receipts] == [first.seq + 1, first.seq + 2, first.seq + 3]
    assert node.reader.size() == first.seq + 4  # the read side reconnects too
    summary = check_ledger(db)
    assert summary.size == first.seq + 4
    assert audit_verify(db, summary.size)
