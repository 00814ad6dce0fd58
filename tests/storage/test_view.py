"""api.view.LedgerView: every read sees what was committed before it was asked for, and reads waiting
together share one refresh (on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from api.node import Node
from api.view import LedgerView
from ledger.envelope import sign_envelope
from tests.support import record_entry, register


@contextmanager
def statements(node: Node, needle: str) -> Iterator[list[str]]:
    """The SQL statements containing ``needle`` that the node's engine runs inside the block."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if needle in statement:
            seen.append(statement)

    event.listen(node.store.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(node.store.engine, "before_cursor_execute", count)


def while_held(view: LedgerView, ask: Callable[[], object], readers: int = 6) -> None:
    """Run ``ask`` in ``readers`` threads that all ask while another thread holds the view, then let go."""
    gate, held = threading.Event(), threading.Event()
    started = threading.Barrier(readers + 1)

    def holder() -> None:
        with view.read():
            held.set()
            gate.wait(10)

    def reader() -> None:
        started.wait(10)
        ask()

    first = threading.Thread(target=holder)
    first.start()
    held.wait(10)
    threads = [threading.Thread(target=reader) for _ in range(readers)]
    for t in threads:
        t.start()
    started.wait(10)
    time.sleep(0.3)  # every reader now waits for the view, its time of asking taken
    gate.set()
    for t in [first, *threads]:
        t.join(10)
    assert not any(t.is_alive() for t in [first, *threads])


def test_a_read_sees_every_entry_committed_before_it(node: Node) -> None:
    view = LedgerView(node.store)
    dept = register(node, "view-dept", "department")
    for i in range(5):
        seq = node.append(record_entry(dept, i, tag="view")).seq
        with view.read() as (registry, state):
            assert view._scanned == seq + 1
            assert dept.key_id in registry.keys
            assert state.datasets_of_owner(dept.key_id)


def test_reads_waiting_on_a_refresh_share_it(node: Node) -> None:
    view = LedgerView(node.store)
    with statements(node, "max(seq)") as queries:
        asked = time.perf_counter_ns()
        with view.read():
            pass
        assert len(queries) == 1
        view._refresh(asked)  # asked before that refresh began: nothing new to see
        assert len(queries) == 1
        dept = register(node, "view-late", "department")  # committed after that refresh
        with view.read() as (registry, _):  # asked now: refreshes again and sees it
            assert dept.key_id in registry.keys
        assert len(queries) == 2

        # Threads asking while one holds the view wait for its lock; the first to get it refreshes and
        # that refresh, begun after they all asked, serves the others (without sharing: six queries).
        before = len(queries)

        def read() -> None:
            with view.read():
                pass

        while_held(view, read)
        assert len(queries) - before <= 2  # one, unless a reader was descheduled for 0.3 s before asking


def test_authentication_sees_key_changes_without_replaying_the_rest(node: Node) -> None:
    """``current_key``: entries that change no key leave the view as it was (one look-up, no replay);
    an identity entry newer than the view brings it up to date before the key is read."""
    view = LedgerView(node.store)
    dept = register(node, "auth-dept", "department")
    record, principal = view.current_key(dept.key_id)
    assert record is not None and record.valid_until is None and principal == dept.key_id
    scanned = view._scanned
    for i in range(3):
        node.append(record_entry(dept, i, tag="auth"))
    record, _ = view.current_key(dept.key_id)
    assert record is not None and view._scanned == scanned  # nothing replayed for these
    admin = node.local_key("admin")
    node.append(sign_envelope(admin.signing, "identity.revoke", {"key_id": dept.key_id}))
    record, _ = view.current_key(dept.key_id)
    assert record is not None and record.valid_until is not None  # the revocation is seen at once
    assert view._scanned == node.reader.size()


def test_look_ups_of_keys_waiting_together_share_one(node: Node) -> None:
    view = LedgerView(node.store)
    dept = register(node, "share-dept", "department")
    with statements(node, "identity.rotate") as looked:
        while_held(view, lambda: view.current_key(dept.key_id))
        assert 1 <= len(looked) <= 2  # one, unless a reader was descheduled for 0.3 s before asking


def test_a_look_up_younger_than_max_age_serves_without_another(node: Node) -> None:
    """``max_age_s`` (access requests, whose decision checks the key again): a look-up begun within that
    time serves the request; an older one does not, and the key's change is then seen."""
    view = LedgerView(node.store)
    dept = register(node, "age-dept", "department")
    view.current_key(dept.key_id)  # a look-up now
    admin = node.local_key("admin")
    node.append(sign_envelope(admin.signing, "identity.revoke", {"key_id": dept.key_id}))
    with statements(node, "identity.rotate") as looked:
        record, _ = view.current_key(dept.key_id, max_age_s=3600)
        assert looked == [] and record is not None and record.valid_until is None  # the cached state
        record, _ = view.current_key(dept.key_id, max_age_s=0.0)
        assert len(looked) == 1 and record is not None and record.valid_until is not None
    time.sleep(0.05)
    with statements(node, "identity.rotate") as looked:
        view.current_key(dept.key_id, max_age_s=0.01)  # the last look-up is older than that
        assert len(looked) == 1
