"""ledger.store.sqlite_wal: connections switching a new SQLite file to WAL together all succeed.

Without the retry, 8 threads opening a new file at once got "database is locked" in about a quarter of
the trials (SQLite refuses the switch at once, without the busy handler, rather than deadlock); the
nonce register's file is created so by two workers' first requests.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ledger.store import sqlite_wal


def open_together(path: Path, threads: int = 8) -> tuple[list[str], list[str]]:
    """Open ``path`` from ``threads`` threads at once, each switching it to WAL: (errors, journal modes)."""
    barrier = threading.Barrier(threads)
    errors: list[str] = []
    modes: list[str] = []

    def open_it() -> None:
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            barrier.wait()
            cur = conn.cursor()
            sqlite_wal(cur, 10_000)
            modes.append(cur.execute("PRAGMA journal_mode").fetchone()[0])
        except sqlite3.Error as exc:
            errors.append(str(exc))
        finally:
            conn.close()

    started = [threading.Thread(target=open_it) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    return errors, modes


def test_threads_opening_a_new_file_together_all_switch_it_to_wal(tmp_path: Path) -> None:
    for trial in range(25):
        errors, modes = open_together(tmp_path / f"new-{trial}.db")
        assert errors == [] and modes == ["wal"] * 8, (trial, errors, modes)


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    cur = conn.cursor()
    conn.close()
    try:
        sqlite_wal(cur, 10_000)
    except sqlite3.ProgrammingError as exc:  # a closed connection: raised at once
        assert "closed" in str(exc)
    else:
        raise AssertionError("no error from a closed connection")
