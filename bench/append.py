"""Timed appends: pre-signed envelopes submitted by many threads in several processes at once.

Each process opens its own ``api.node.Node`` on the shared database (as API workers would) and runs
``threads`` threads that each call ``Node.append`` in a loop; the sequencer group-commits what they
submit. With ``per_call`` > 1 each thread instead submits that many envelopes per call through
``Sequencer.append_many`` (a client posting a few entries at once): every call returns only once all
of its entries are committed and sealed. The figure is acknowledged appends per second of wall time,
from a common start to the last acknowledgement.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.node import Node
from bench.world import SigningPool, World
from ledger.errors import LedgerError
from ledger.store import Store


@dataclass
class AppendResult:
    per_s: float
    entries: int
    seconds: float
    processes: int
    threads: int
    per_call: int
    blocks: int
    errors: int
    cpu_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "per_s": round(self.per_s, 1),
            "entries": self.entries,
            "seconds": round(self.seconds, 3),
            "processes": self.processes,
            "threads_per_process": self.threads,
            "entries_per_call": self.per_call,
            "blocks": self.blocks,
            "mean_batch": round(self.entries / max(self.blocks, 1), 1),
            "errors": self.errors,
            "cpu_s": round(self.cpu_s, 2),
        }


def _submitter(
    db: str, home: Path, leaves: list[bytes], threads: int, per_call: int, start: Any, out: Any
) -> None:  # runs in a child process
    node = Node(db, home)
    node.sequencer  # noqa: B018 (load the log key before the clock starts)
    with node.store.reader() as conn:
        Store.head(conn)
    errors: list[str] = []
    feed = iter(leaves)  # next() on a list iterator is atomic under the GIL: no lock to queue on
    calls = iter([leaves[i : i + per_call] for i in range(0, len(leaves), per_call)])
    # What a long-running API worker does once loaded: move the start-up heap (modules, the node,
    # the replayed state) out of the collector's generations, so a full collection scans only what
    # came after instead of stalling every thread for ~0.2 s.
    gc.freeze()

    def run() -> None:
        while True:
            leaf = next(feed, None)
            if leaf is None:
                return
            try:
                node.append(leaf)
            except LedgerError as exc:
                errors.append(str(exc))

    def run_many() -> None:
        sequencer = node.sequencer
        while True:
            chunk = next(calls, None)
            if chunk is None:
                return
            errors.extend(str(r) for r in sequencer.append_many(chunk) if isinstance(r, LedgerError))

    workers = [threading.Thread(target=run if per_call == 1 else run_many) for _ in range(threads)]
    start.wait()
    t0 = time.perf_counter()
    c0 = time.process_time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put((time.perf_counter() - t0, time.process_time() - c0, len(errors), errors[:3]))
    node.close()


def timed_appends(
    db: str, home: Path, leaves: list[bytes], *, processes: int, threads: int, per_call: int = 1
) -> AppendResult:
    """Append ``leaves`` through ``processes`` × ``threads`` concurrent submitters (``per_call`` each call); time it."""
    ctx = mp.get_context("fork")
    start = ctx.Barrier(processes + 1)
    out = ctx.SimpleQueue()
    store = Store(db)
    with store.reader() as conn:
        before = Store.head(conn)
    store.close()
    slices = [leaves[i::processes] for i in range(processes)]
    procs = [ctx.Process(target=_submitter, args=(db, home, s, threads, per_call, start, out)) for s in slices]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    results = [out.get() for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    store = Store(db)
    with store.reader() as conn:
        after = Store.head(conn)
    store.close()
    assert after is not None
    blocks = after[0].height - (before[0].height if before else -1)
    errors = sum(r[2] for r in results)
    if errors:
        print(f"  append errors: {[r[3] for r in results]}", file=sys.stderr)
    return AppendResult(
        per_s=(len(leaves) - errors) / wall,
        entries=len(leaves),
        seconds=wall,
        processes=processes,
        threads=threads,
        per_call=per_call,
        blocks=blocks,
        errors=errors,
        cpu_s=sum(r[1] for r in results),
    )


def prepared_ledger(db: str, home: Path, world_citizens: int = 2000) -> tuple[World, SigningPool]:
    """Initialise a ledger at ``db`` and register a small world on it (departments, citizens, datasets)."""
    node = Node(db, home)
    node.init()
    world = World(
        bytes(node.local_key("admin").signing), bytes(node.local_key("service").signing), citizens=world_citizens
    )
    pool = SigningPool(world)
    setup = pool.sign("setup", 0, world.setup_size)
    bad = [r for r in node.sequencer.append_many(setup) if isinstance(r, LedgerError)]
    if bad:
        raise RuntimeError(f"world setup refused: {bad[0]}")
    node.close()
    return world, pool


def sign_timed_batch(world: World, pool: SigningPool, count: int) -> list[bytes]:
    """``count`` envelopes: one in ten registers a new citizen (admin-signed), the rest are traffic."""
    registrations = count // 10
    leaves = pool.sign("citizens", world.citizens, registrations)
    traffic = pool.sign("traffic", 0, count - registrations)
    mixed: list[bytes] = []
    for i, leaf in enumerate(traffic):
        mixed.append(leaf)
        if i % 9 == 8 and leaves:
            mixed.append(leaves.pop())
    mixed.extend(leaves)
    return mixed


if __name__ == "__main__":  # quick manual run: python -m bench.append [sqlite|URL] [N] [P] [T] [PER_CALL]
    import tempfile

    args = sys.argv[1:] + [""] * 5
    tmp = Path(tempfile.mkdtemp(prefix="shulian-append-"))
    os.environ.setdefault("SHULIAN_PASSPHRASE", "bench")
    os.environ["SHULIAN_HOME"] = str(tmp)
    url = args[0] if args[0] not in ("", "sqlite") else f"sqlite:///{tmp}/ledger.db"
    w, pool = prepared_ledger(url, tmp)
    batch = sign_timed_batch(w, pool, int(args[1] or 30000))
    pool.close()
    r = timed_appends(
        url, tmp, batch, processes=int(args[2] or 2), threads=int(args[3] or 64), per_call=int(args[4] or 1)
    )
    print(r.to_json())
    shutil.rmtree(tmp)
