"""The SQLite writer gate: writers queue on a lock that wakes the next one as soon as it is free.

Two ``Store`` objects on one file stand for two processes (each has its own descriptor of the lock
file, so ``flock`` excludes them as it excludes processes); the SIGKILL case, where the kernel
releases the lock of a dead writer, is in test_processes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from ledger.store import Store


def test_writers_take_turns_and_the_next_is_woken_at_once(sqlite_url: str) -> None:
    first, second = Store(sqlite_url), Store(sqlite_url)
    try:
        released_at: list[float] = []
        entered_at: list[float] = []

        def other() -> None:
            with second.writer() as conn:
                entered_at.append(time.monotonic())
                conn.execute(text("SELECT 1"))

        with first.writer():
            assert Path(f"{first.engine.url.database}-writer.lock").exists()
            thread = threading.Thread(target=other)
            thread.start()
            thread.join(0.5)
            assert not entered_at, "a second writer entered while the first held the lock"
            released_at.append(time.monotonic())
        thread.join(10)
        assert entered_at, "the second writer never entered"
        # SQLite's own busy handler would have polled with sleeps of up to 100 ms; the gate wakes it.
        assert entered_at[0] - released_at[0] < 0.5
    finally:
        first.close()
        second.close()


def test_a_failed_writer_releases_the_gate(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    try:
        try:
            with store.writer() as conn:
                conn.execute(text("SELECT 1"))
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        done = threading.Event()

        def again() -> None:
            with store.writer() as conn:
                conn.execute(text("SELECT 1"))
            done.set()

        threading.Thread(target=again, daemon=True).start()
        assert done.wait(10), "the gate stayed locked after a writer failed"
    finally:
        store.close()
