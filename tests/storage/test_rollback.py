"""A commit that does not land is taken back off the writer's cache, not answered by a replay of the
whole ledger (tens of seconds at 10^6 entries, during which the writer's own requests wait).

Each case checks that the writer did not reset its cache, that the cache then equals a replay of the
stored ledger (registry and consent state, pickled), and that the ledger still verifies.
"""

from __future__ import annotations

import pickle
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection

from api.node import Node
from ledger.envelope import parse_stored, sign_envelope
from ledger.errors import KeyError_, LedgerError
from ledger.sequencer import Sequencer
from ledger.store import StorageError, Store
from tests.consent.builder import replayed as replayed_entries
from tests.support import check_ledger, record_entry, register, register_body, stored_key


@pytest.fixture
def resets(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The cache sizes at which any sequencer resets (replays the ledger from seq 0 at its next commit)."""
    seen: list[int] = []
    reset = Sequencer._reset

    def counted(self: Sequencer) -> None:
        seen.append(getattr(self, "_size", -1))
        reset(self)

    monkeypatch.setattr(Sequencer, "_reset", counted)
    yield seen


def replayed(node: Node) -> bytes:
    """The registry and consent state of the stored ledger, as a cold writer would build them."""
    with node.store.reader() as conn:
        entries = [parse_stored(leaf) for _, leaf in Store.entries_between(conn, 0, node.reader.size())]
    return pickle.dumps(replayed_entries(entries))


def cached(node: Node) -> bytes:
    registry, machines = node.sequencer.cached_state()
    assert node.sequencer._size == node.reader.size()
    return pickle.dumps((registry, machines[0]))


def warm(node: Node) -> Any:
    """A department key and a few of its entries; the node's writer warm and pipelining."""
    dept = register(node, "dept", "department")
    for i in range(3):
        node.append(record_entry(dept, i))
    assert node.sequencer._head is not None and node.sequencer._pipeline
    return dept


def test_a_writer_moved_by_another_takes_its_plan_back(
    node: Node, other: Node, ledger_url: str, resets: list[int]
) -> None:
    """Writer A plans on its cache while writer B commits: A's insert clashes (``_Moved``); A takes its
    plan back and commits on top of B's entries, reading only those."""
    dept = warm(node)
    other.append(record_entry(dept, 10))  # B: cold, replays once (its own reset is at construction)
    before = len(resets)
    receipt = node.append(record_entry(dept, 11))
    assert not node.sequencer._pipeline  # A met B's commit: classic path from now on
    assert resets[before:] == []
    assert receipt.seq == node.reader.size() - 1
    assert cached(node) == replayed(node)
    for i in range(12, 16):  # and both go on writing, alternately (A last)
        (node if i % 2 else other).append(record_entry(dept, i))
    assert resets[before:] == []
    assert cached(node) == replayed(node)
    check_ledger(ledger_url)


@pytest.mark.parametrize("pipelined", [True, False])
def test_a_failed_commit_is_taken_back(node: Node, ledger_url: str, resets: list[int], pipelined: bool) -> None:
    dept = warm(node)
    node.sequencer._pipeline = pipelined
    size = node.reader.size()
    before = len(resets)

    def full_disk(conn: Connection, seqs: list[int]) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(StorageError, match="No space left"):
        node.sequencer.append(record_entry(dept, 20), attach=full_disk)
    assert node.reader.size() == size  # nothing written
    assert resets[before:] == []
    assert cached(node) == replayed(node)
    receipt = node.append(record_entry(dept, 20))  # the same entry, now it fits: the seq the failed one had
    assert receipt.seq == size
    assert resets[before:] == []
    assert cached(node) == replayed(node)
    check_ledger(ledger_url)


def test_an_item_refused_while_writing_is_taken_back(node: Node, ledger_url: str, resets: list[int]) -> None:
    dept = warm(node)
    before = len(resets)

    def refuse(conn: Connection, seqs: list[int]) -> None:
        raise LedgerError("the vault refuses this record")

    with pytest.raises(LedgerError, match="the vault refuses"):
        node.sequencer.append(record_entry(dept, 30), attach=refuse)
    assert resets[before:] == []
    assert cached(node) == replayed(node)
    node.append(record_entry(dept, 31))
    assert cached(node) == replayed(node)
    check_ledger(ledger_url)


def test_a_group_refused_part_way_leaves_no_trace(node: Node, ledger_url: str, resets: list[int]) -> None:
    """The second entry of a group is refused after the first was applied: the first is taken back
    (its key is not registered), and the group's other items are not disturbed."""
    warm(node)
    before = len(resets)
    admin = node.local_key("admin").signing
    key = stored_key("grouped", "department")
    first = sign_envelope(admin, "identity.register", register_body(key, "department"))
    again = sign_envelope(admin, "identity.register", register_body(key, "department", "another name"))
    with pytest.raises(KeyError_, match="already registered"):
        node.sequencer.append_group([first, again])
    assert node.sequencer.public_key(key.key_id) is None
    assert resets[before:] == []
    assert cached(node) == replayed(node)
    node.sequencer.append_group([first])  # alone it is fine
    assert node.sequencer.public_key(key.key_id) is not None
    assert cached(node) == replayed(node)
    check_ledger(ledger_url)


def test_a_commit_lost_after_the_hand_over_is_taken_back_by_the_next_leader(
    node: Node, ledger_url: str, resets: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pipelined: the leader hands the lead over before its COMMIT returns, and the COMMIT fails. The
    next leader has planned its batch on top of it: it takes both plans back and commits its own."""
    dept = warm(node)
    size = node.reader.size()
    writer, armed = Store.writer, [True]

    @contextmanager
    def losing(self: Store, **kw: Any) -> Iterator[Connection]:
        with writer(self, **kw) as conn:
            yield conn
            if armed[0]:
                armed[0] = False
                raise OSError(5, "Input/output error")  # the transaction rolls back: as if COMMIT failed

    monkeypatch.setattr(Store, "writer", losing)
    before = len(resets)
    with pytest.raises(StorageError, match="Input/output error"):
        node.append(record_entry(dept, 40))
    assert node.sequencer._committing is not None  # handed over: left for the next leader
    receipt = node.append(record_entry(dept, 41))
    assert receipt.seq == size
    assert resets[before:] == []
    assert cached(node) == replayed(node)
    node.append(record_entry(dept, 40))
    assert cached(node) == replayed(node)
    check_ledger(ledger_url)


@pytest.mark.parametrize("writers", [1, 2])
@pytest.mark.parametrize("where", ["write", "commit"])
def test_writers_under_load_with_failing_commits_keep_exact_caches(
    node: Node, other: Node, ledger_url: str, monkeypatch: pytest.MonkeyPatch, writers: int, where: str
) -> None:
    """Threads on one writer (pipelining) or on two (each meeting the other's commits) append at once
    while some commits fail, now and then: while writing (an attach that raises) or at the COMMIT, after
    the lead was handed over (the next leader has planned on top of it). Every acknowledged entry is on
    the ledger exactly once, the ledger verifies, and each writer's cache equals a replay of it."""
    dept = warm(node)
    nodes = [node] * 4 if writers == 1 else [node, node, other, other]
    if writers == 2:
        other.append(record_entry(dept, 1000))
    rng = random.Random(7)
    acked: list[int] = []
    failed = [0]
    guard = threading.Lock()

    def unlucky() -> bool:
        with guard:
            return rng.random() < 0.15

    def sometimes(conn: Connection, seqs: list[int]) -> None:
        if where == "write" and unlucky():
            raise OSError(5, "Input/output error")

    writer = Store.writer

    @contextmanager
    def losing(self: Store, **kw: Any) -> Iterator[Connection]:
        with writer(self, **kw) as conn:
            yield conn
            if where == "commit" and unlucky():
                raise OSError(5, "Input/output error")  # rolled back: as if COMMIT failed

    monkeypatch.setattr(Store, "writer", losing)

    def submit(n: Node, start: int) -> None:
        for i in range(start, start + 25):
            try:
                r = n.sequencer.append(record_entry(dept, i), attach=sometimes)
            except StorageError:
                with guard:
                    failed[0] += 1
                continue
            with guard:
                acked.append(r.seq)

    threads = [threading.Thread(target=submit, args=(n, 2000 + 100 * k)) for k, n in enumerate(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failed[0] > 0 and len(acked) + failed[0] == 100
    assert len(set(acked)) == len(acked)
    size = node.reader.size()
    with node.store.reader() as conn:
        stored = dict(Store.entries_between(conn, 0, size))
    assert all(seq in stored for seq in acked)
    monkeypatch.setattr(Store, "writer", writer)
    for k, n in enumerate(dict.fromkeys(nodes)):  # a writer's last append brings its cache up to date
        n.append(record_entry(dept, 3000 + k))
        assert cached(n) == replayed(n)
    check_ledger(ledger_url)


def test_the_writer_tells_of_its_replays_and_rollbacks(node: Node, other: Node) -> None:
    """What ``shulian_writer_replays_total`` and ``shulian_writer_rollbacks_total`` count."""
    dept = warm(node)
    events: list[tuple[str, int]] = []
    other.sequencer._on_cache = lambda event, entries, seconds: events.append((event, entries))
    size = node.reader.size()
    other.append(record_entry(dept, 50))  # cold: one replay of the ledger as it stood
    assert events == [("replay", size)]

    def full_disk(conn: Connection, seqs: list[int]) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(StorageError):
        other.sequencer.append_group([record_entry(dept, 51), record_entry(dept, 52)], attach=full_disk)
    assert events == [("replay", size), ("rollback", 2)]
