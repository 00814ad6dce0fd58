"""The nonce register: nonces checked in memory first, written in group-committed batches, and still
refused across workers (two registers on one database), after a restart, and when raced.

Each register stands for one API worker process: its own engine, its own memory of nonces.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from api import nonces, tables
from api.nonces import NonceRegister, Replayed
from ledger.store import StorageError, Store


@pytest.fixture
def store(ledger_url: str) -> Iterator[Store]:
    s = Store(ledger_url)
    s.create_schema()
    try:
        yield s
    finally:
        s.close()


def registers(store: Store, count: int) -> list[NonceRegister]:
    return [NonceRegister(store) for _ in range(count)]


def stored(register: NonceRegister) -> int:
    with register.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.request_nonces)).scalar_one())


def nonce(i: int) -> str:
    return f"{i:022d}"


def test_a_nonce_is_taken_once_by_any_worker_and_after_a_restart(store: Store) -> None:
    a, b = registers(store, 2)
    now = int(time.time())
    a.remember(nonce(1), "k" * 32, now)
    with pytest.raises(Replayed):
        a.remember(nonce(1), "k" * 32, now)  # the same worker: refused from memory
    with pytest.raises(Replayed):
        b.remember(nonce(1), "k" * 32, now)  # another worker: refused by the database
    b.remember(nonce(2), "k" * 32, now)
    a.close()
    b.close()
    restarted = NonceRegister(store)  # nothing in memory: the database remembers
    for n in (nonce(1), nonce(2)):
        with pytest.raises(Replayed):
            restarted.remember(n, "k" * 32, now)
    restarted.remember(nonce(3), "k" * 32, now)
    assert stored(restarted) == 3
    restarted.close()


def test_concurrent_nonces_are_group_committed_and_a_race_has_one_winner(store: Store) -> None:
    a, b = registers(store, 2)
    now = int(time.time())
    outcomes: dict[tuple[int, int], str] = {}
    lock = threading.Lock()

    def send(register: NonceRegister, worker: int, i: int) -> None:
        try:
            register.remember(nonce(i), "k" * 32, now)
            result = "taken"
        except Replayed:
            result = "replayed"
        with lock:
            outcomes[(worker, i)] = result

    # 40 distinct nonces, each sent to both workers at once: for each exactly one worker takes it.
    threads = [threading.Thread(target=send, args=(r, w, i)) for i in range(40) for w, r in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(40):
        assert sorted([outcomes[(0, i)], outcomes[(1, i)]]) == ["replayed", "taken"], i
    assert stored(a) == 40
    for register in (a, b):  # and every one is refused by either worker afterwards
        for i in range(40):
            with pytest.raises(Replayed):
                register.remember(nonce(i), "k" * 32, now)
    a.close()
    b.close()


def test_many_waiting_nonces_go_in_one_transaction(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    register = NonceRegister(store)
    register.remember(nonce(0), "k" * 32, int(time.time()))  # the table exists: timing below is the inserts'
    batches: list[int] = []
    insert = nonces._insert_new
    gate = threading.Event()

    def slow_insert(conn: object, batch: list[object]) -> set[str]:
        batches.append(len(batch))
        gate.wait(5)  # the first transaction holds on while the other requests queue up
        return insert(conn, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(nonces, "_insert_new", slow_insert)
    now = int(time.time())
    threads = [threading.Thread(target=register.remember, args=(nonce(i), "k" * 32, now)) for i in range(1, 31)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while (not batches or batches[0] + len(register._queue) < 30) and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.set()
    for t in threads:
        t.join()
    assert sum(batches) == 30 and len(batches) == 2, batches  # what the first leader took, then all the rest
    assert stored(register) == 31
    register.close()


def test_a_failed_write_is_an_error_and_the_nonce_is_not_kept(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    register = NonceRegister(store)

    def unavailable(conn: object, batch: object) -> set[str]:
        raise StorageError("nonce register unavailable: disk I/O error")

    monkeypatch.setattr(nonces, "_insert_new", unavailable)
    now = int(time.time())
    with pytest.raises(StorageError):
        register.remember(nonce(7), "k" * 32, now)
    monkeypatch.undo()
    register.remember(nonce(7), "k" * 32, now)  # never recorded: the same request may come again, once
    with pytest.raises(Replayed):
        register.remember(nonce(7), "k" * 32, now)
    register.close()


def test_old_nonces_are_purged(store: Store) -> None:
    register = NonceRegister(store)
    now = int(time.time())
    register._purged_at = now - 10_000  # the next write purges
    old = now - 3 * 300
    register.remember(nonce(1), "k" * 32, old)
    register._purged_at = now - 10_000
    register.remember(nonce(2), "k" * 32, now)
    assert stored(register) == 1  # the first was past twice the allowed skew
    register.close()
