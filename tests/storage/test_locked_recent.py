"""What another writer committed comes with the writer lock (PostgreSQL: in the lock's round trip).

A writer whose cache is behind replays the other writer's entries and extends its tree frontier with
their leaf hashes, checked against the head's root, instead of two more queries inside the lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from api.node import Node
from ledger.sequencer import Sequencer
from ledger.store import Store
from ledger.tree import leaf_hash
from tests.support import audit_verify, check_ledger, record_entry, register


def test_the_entries_since_a_seq_come_with_the_lock(node: Node) -> None:
    register(node, "dept-a", "department")
    size = node.reader.size()
    with node.store.reader() as conn:
        stored = list(Store.entries_between(conn, 1, size))
    with node.store.writer(recent_from=1) as conn:
        recent = Store.locked_recent(conn)
        assert Store.locked_recent(conn) is None  # taken once
    if node.store.is_sqlite:
        assert recent is None  # in process: nothing to save
        return
    assert recent is not None
    assert [(seq, leaf) for seq, leaf, _ in recent] == stored
    with node.store.reader() as conn:
        hashes = Store.seqs_of_hashes(conn, [digest for _, _, digest in recent])
    assert sorted(hashes.values()) == [seq for seq, _, _ in recent]
    with node.store.writer() as conn:
        assert Store.locked_recent(conn) is None  # not asked for


def test_alternating_writers_catch_up_inside_the_lock_without_reading_nodes(
    node: Node, other: Node, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each writer finds the other's commit only once it holds the lock (its catch-up before the lock
    is skipped here): on PostgreSQL the frontier then comes from the entries read with the lock."""
    dept = register(node, "dept", "department")
    node.append(record_entry(dept, 0))
    other.append(record_entry(dept, 1))  # cold: reads everything once
    for n in (node, other):
        n.sequencer._pipeline = False  # several writers: the classic path, as after a first clash
    monkeypatch.setattr(Sequencer, "_catch_up", lambda self: None)
    reads: list[int] = []
    nodes = Store.nodes

    def counted(conn: object, wanted: object) -> object:
        reads.append(1)
        return nodes(conn, wanted)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "nodes", staticmethod(counted))
    seqs = []
    for i in range(2, 12):
        writer = node if i % 2 else other
        seqs.append(writer.append(record_entry(dept, i)).seq)
    assert seqs == list(range(seqs[0], seqs[0] + 10))
    if node.store.is_sqlite:
        assert reads  # the nodes are read from the database
    else:
        assert not reads
    summary = check_ledger(ledger_url)
    audit_verify(ledger_url, summary.size)


def test_entries_that_do_not_give_the_head_root_are_not_trusted(node: Node, other: Node) -> None:
    """The frontier made from the entries read with the lock must have the head's root; if not, the
    nodes are read as before."""
    dept = register(node, "dept", "department")
    node.append(record_entry(dept, 0))
    seq = other.sequencer
    other.append(record_entry(dept, 1))  # warm
    node.append(record_entry(dept, 2))
    size = node.reader.size()
    with node.store.reader() as conn:
        head = Store.head(conn)
        recent = [(s, leaf, leaf_hash(leaf)) for s, leaf in Store.entries_between(conn, seq._size, size)]
    assert head is not None and len(recent) == size - seq._size
    good = seq._extended(recent, size, head[0])
    assert good is not None and good.root() == head[0].root
    forged = [(s, leaf, bytes(32)) for s, leaf, _ in recent]
    assert seq._extended(forged, size, head[0]) is None
    assert seq._extended(recent[1:], size, head[0]) is None
    assert seq._extended(None, size, head[0]) is None


def test_a_cold_writer_replays_the_ledger_before_taking_the_lock(
    node: Node, other: Node, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process starting (or a writer after a failed commit) replays the whole ledger before it queues
    for the writer lock, not while holding it: at 10^6 entries that takes tens of seconds, which every
    other writer would otherwise wait."""
    dept = register(node, "dept", "department")
    for i in range(3):
        node.append(record_entry(dept, i))
    holding = [False]
    writer = Store.writer

    @contextmanager
    def flagged(self: Store, **kw: Any) -> Iterator[Any]:
        with writer(self, **kw) as conn:
            holding[0] = True
            try:
                yield conn
            finally:
                holding[0] = False

    syncs: list[tuple[int, int, bool]] = []
    sync = Sequencer._sync

    def spied(self: Sequencer, conn: Any, size: int, head: Any, recent: Any = None) -> None:
        syncs.append((self._size, size, holding[0]))
        sync(self, conn, size, head, recent)

    monkeypatch.setattr(Store, "writer", flagged)
    monkeypatch.setattr(Sequencer, "_sync", spied)
    other.append(record_entry(dept, 3))  # its sequencer has read nothing yet
    cold = [s for s in syncs if s[0] == -1]
    assert cold and cold[0][1] == node.reader.size() - 1  # the whole ledger as it stood, replayed once
    assert not any(inside for _, _, inside in cold)
    check_ledger(ledger_url)


def test_warm_builds_the_cache_before_the_first_append(node: Node, other: Node) -> None:
    """``Sequencer.warm`` (the writer process calls it as it starts): the replay happens then, outside
    any write, and the first append only reads what came after it."""
    dept = register(node, "dept", "department")
    node.append(record_entry(dept, 0))
    events: list[tuple[str, int]] = []
    seq = other.sequencer
    seq._on_cache = lambda event, entries, seconds: events.append((event, entries))
    seq.warm()
    assert seq._size == node.reader.size() and events == [("replay", node.reader.size())]
    seq.warm()  # built: nothing more
    node.append(record_entry(dept, 1))
    assert other.append(record_entry(dept, 2)).seq == node.reader.size() - 1
    # no second replay (its plan met the other writer's entry and was taken back: the classic path then)
    assert events == [("replay", node.reader.size() - 2), ("rollback", 1)]


def test_the_duplicate_lookup_survives_its_connection_ended_by_the_server(node: Node) -> None:
    """The connection kept for the pipelined duplicate look-up is ended while idle (a restart, an idle
    timeout, pg_terminate_backend): the next look-up takes a new one instead of failing the commit."""
    if node.store.is_sqlite:
        pytest.skip("PostgreSQL ends sessions; an SQLite connection is a file")
    dept = register(node, "dept", "department")
    stored = node.append(record_entry(dept, 0))
    assert node.store.seqs_committed([stored.leaf_hash]) == {stored.leaf_hash: stored.seq}
    probe = node.store._probe
    assert probe is not None
    pid = probe[1].dbapi_connection.info.backend_pid  # type: ignore[union-attr]
    with node.store.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    assert node.store.seqs_committed([stored.leaf_hash]) == {stored.leaf_hash: stored.seq}
    assert node.store._probe is not None and node.store._probe[1] is not probe[1]
    assert node.append(record_entry(dept, 1)).seq == stored.seq + 1
