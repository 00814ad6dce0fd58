"""The growth table: append and proof cost per entry as the ledger grows (10^4, 10^5, 10^6 entries).

For each size, on a ledger of that many entries made through the real sequencer:
- append: ``APPEND_BATCH`` freshly signed envelopes appended through ``Sequencer.append_many`` in
  calls of ``APPEND_CALL`` (one block each), one caller, timed; the figure is microseconds per
  entry, so a cost that grew with the ledger (a rebuilt tree, an index scan) shows as a rising row;
- proofs: ``bench.proofs.proof_latency`` (p50 and p90 of inclusion by leaf hash and consistency to
  the head, what the API serves);
- disk: bytes per entry (SQLite: the database file; PostgreSQL: the database's growth since init).

SQLite uses ``bench.build``'s cached ledgers (of any code version), appending to a copy so the
cache stays exact.
PostgreSQL has no cache: each run builds its ledgers in a fresh database (``build_postgresql``: the
same world and entry streams as ``bench.build``) at the sizes in ``PG_SIZES``.

SHULIAN_BENCH_GROWTH_SQLITE and SHULIAN_BENCH_GROWTH_PG (comma-separated sizes, empty for none)
run a part of the table alone; SHULIAN_BENCH_GROWTH_APPENDS sets ``APPEND_BATCH``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from api.node import Node
from bench import build, proofs
from bench.world import SigningPool
from ledger.errors import LedgerError
from ledger.sequencer import Sequencer


def _sizes(variable: str, default: str) -> tuple[int, ...]:
    """Sizes from ``variable`` (comma-separated; empty: none), to run a part of the table alone."""
    return tuple(int(s) for s in os.environ.get(variable, default).split(",") if s.strip())


SQLITE_SIZES = _sizes("SHULIAN_BENCH_GROWTH_SQLITE", "10000,100000,1000000")
PG_SIZES = _sizes("SHULIAN_BENCH_GROWTH_PG", "10000,100000")
APPEND_BATCH = int(os.environ.get("SHULIAN_BENCH_GROWTH_APPENDS", "8000"))
APPEND_CALL = 1000


def _log(msg: str) -> None:
    print(f"[growth {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _append_all(seq: Sequencer, leaves: list[bytes], call: int) -> None:
    for i in range(0, len(leaves), call):
        for result in seq.append_many(leaves[i : i + call]):
            if isinstance(result, LedgerError):
                raise RuntimeError(f"the sequencer refused a bench entry: {result}")


def timed_appends(node: Node, size: int) -> dict[str, Any]:
    """Append ``APPEND_BATCH`` new traffic entries to ``node``'s ledger of ``size`` entries; time them.

    One call of ``APPEND_CALL`` entries goes first, untimed (``first_call_s``: the state replay).
    """
    world = build.world_for(size, bytes(node.local_key("admin").signing), bytes(node.local_key("service").signing))
    seq = node.sequencer
    pool = SigningPool(world)
    try:
        # Stream positions past every one the ledger holds: new records, new grants. The first call
        # is not timed: a sequencer opening a ledger replays it once into its key registry and
        # consent state (what a replica does when it starts), a cost of its own.
        t0 = time.perf_counter()
        # The replay first, then entries signed after it: a replay of 10^6 entries on a loaded
        # machine can outlast the five minutes the ledger allows between an entry's time and its own.
        seq._catch_up()
        _append_all(seq, pool.sign("traffic", size, APPEND_CALL), APPEND_CALL)
        first_call = time.perf_counter() - t0
        size += APPEND_CALL
        leaves = pool.sign("traffic", size, APPEND_BATCH)  # signed now: within the ledger's 5 minutes
    finally:
        pool.close()
    with node.store.reader() as conn:
        before = int(conn.exec_driver_sql("SELECT count(*) FROM blocks").scalar_one())
    t0, c0 = time.perf_counter(), time.process_time()
    _append_all(seq, leaves, APPEND_CALL)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    with node.store.reader() as conn:
        blocks = int(conn.exec_driver_sql("SELECT count(*) FROM blocks").scalar_one()) - before
    if node.reader.size() != size + APPEND_BATCH:
        raise RuntimeError(f"ledger holds {node.reader.size()} entries, want {size + APPEND_BATCH}")
    return {
        "entries": APPEND_BATCH,
        "blocks": blocks,
        "seconds": round(seconds, 3),
        "per_s": round(APPEND_BATCH / seconds, 1),
        "us_per_entry": round(seconds / APPEND_BATCH * 1e6, 1),
        # This process's CPU (every thread; SQLite works in-process, PostgreSQL's server does not
        # count): steadier than wall time on a machine shared with other work.
        "cpu_us_per_entry": round(cpu / APPEND_BATCH * 1e6, 1),
        "first_call_s": round(first_call, 3),
    }


def sqlite_row(size: int) -> dict[str, Any]:
    """One SQLite row on ``bench.build``'s ledger of ``size`` entries."""
    # A cached ledger made by other code is reused too: the table is about cost against size, and
    # rebuilding 10^6 entries for each code change would cost the bench its time budget.
    ledger = build.build(size, any_version=True)
    return ledger_row(ledger.path)


def ledger_row(path: Path) -> dict[str, Any]:
    """Proofs on the SQLite ledger in ``path`` (``ledger.db`` and ``home/``), appends on a snapshot of it."""
    db_file = path / "ledger.db"
    reader = Node(f"sqlite:///{db_file}", path / "home")
    entries = reader.reader.size()
    reader.close()
    row: dict[str, Any] = {
        "entries": entries,
        "bytes_per_entry": round(db_file.stat().st_size / entries, 1),
        "db_bytes": db_file.stat().st_size,
    }
    _log(f"sqlite {entries}: proofs")
    row.update(proofs.proof_latency(f"sqlite:///{db_file}"))
    scratch = Path(tempfile.mkdtemp(prefix="growth-", dir=build.OUT))
    try:
        # SQLite's online backup: a consistent snapshot even while another process appends.
        src = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
        dst = sqlite3.connect(scratch / "ledger.db")
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        shutil.copytree(path / "home", scratch / "home")
        node = Node(f"sqlite:///{scratch / 'ledger.db'}", scratch / "home")
        _log(f"sqlite {entries}: {APPEND_BATCH} appends on a copy")
        row["append"] = timed_appends(node, entries)
        node.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _log(f"sqlite {entries}: {row['append']['us_per_entry']} µs/append, inclusion p50 {row['inclusion_p50_ms']} ms")
    return row


def build_postgresql(url: str, home: Path, size: int, chunk: int = 20_000) -> Node:
    """A ledger of exactly ``size`` entries at ``url`` from ``bench.build``'s world and streams."""
    node = Node(url, home)
    node.init()
    world = build.world_for(size, bytes(node.local_key("admin").signing), bytes(node.local_key("service").signing))
    pool = SigningPool(world)
    try:
        have = node.reader.size()
        setup = min(world.setup_size, size - have)
        _append_all(node.sequencer, pool.sign("setup", 0, setup), 4000)
        batch: list[bytes] = []
        for piece in pool.sign_stream("traffic", 0, size - have - setup):
            batch.extend(piece)
            if len(batch) >= chunk:
                _append_all(node.sequencer, batch, 4000)
                batch = []
        _append_all(node.sequencer, batch, 4000)
    finally:
        pool.close()
    if node.reader.size() != size:
        raise RuntimeError(f"built {node.reader.size()} entries on PostgreSQL, wanted {size}")
    return node


def _pg_bytes(node: Node) -> int:
    with node.store.reader() as conn:
        return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())


def postgresql_row(database: Callable[[], AbstractContextManager[str | None]], size: int) -> dict[str, Any] | None:
    """One PostgreSQL row in a fresh database; None when PostgreSQL cannot be reached."""
    with database() as url:
        if url is None:
            return None
        home = Path(tempfile.mkdtemp(prefix="growth-pg-", dir=build.OUT))
        try:
            empty = Node(url, home)
            empty.init()
            base = _pg_bytes(empty)
            empty.close()
            _log(f"postgresql {size}: building")
            t0 = time.perf_counter()
            node = build_postgresql(url, home, size)
            row: dict[str, Any] = {"entries": size, "build_s": round(time.perf_counter() - t0, 1)}
            row["bytes_per_entry"] = round((_pg_bytes(node) - base) / size, 1)
            node.close()
            _log(f"postgresql {size}: proofs")
            row.update(proofs.proof_latency(url))
            node = Node(url, home)
            _log(f"postgresql {size}: {APPEND_BATCH} appends")
            row["append"] = timed_appends(node, size)
            node.close()
        finally:
            shutil.rmtree(home, ignore_errors=True)
    _log(f"postgresql {size}: {row['append']['us_per_entry']} µs/append, inclusion p50 {row['inclusion_p50_ms']} ms")
    return row


def _flatness(rows: dict[str, dict[str, Any]]) -> dict[str, float] | None:
    """Largest over smallest size: per-entry append cost and proof latencies (1.0 = flat)."""
    if len(rows) < 2:
        return None
    sizes = sorted(rows, key=int)
    small, large = rows[sizes[0]], rows[sizes[-1]]
    return {
        "sizes": f"{sizes[-1]} / {sizes[0]}",
        "append_us_per_entry": round(large["append"]["us_per_entry"] / small["append"]["us_per_entry"], 3),
        "append_cpu_us_per_entry": round(large["append"]["cpu_us_per_entry"] / small["append"]["cpu_us_per_entry"], 3),
        "inclusion_p50_ms": round(large["inclusion_p50_ms"] / small["inclusion_p50_ms"], 3),
        "consistency_p50_ms": round(large["consistency_p50_ms"] / small["consistency_p50_ms"], 3),
    }


def growth_table(pg_database: Callable[[], AbstractContextManager[str | None]]) -> dict[str, Any]:
    """The table for both engines, with each engine's largest/smallest ratios."""
    sqlite = {str(size): sqlite_row(size) for size in SQLITE_SIZES}
    pg: dict[str, dict[str, Any]] = {}
    reason = None
    for size in PG_SIZES:
        row = postgresql_row(pg_database, size)
        if row is None:
            reason = "PostgreSQL not reachable"
            break
        pg[str(size)] = row
    return {
        "append_batch": APPEND_BATCH,
        "append_call": APPEND_CALL,
        "sqlite": sqlite,
        "postgresql": pg or {"reason": reason},
        "ratio_largest_to_smallest": {"sqlite": _flatness(sqlite), "postgresql": _flatness(pg)},
    }
