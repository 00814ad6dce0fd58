"""Build (or reuse) a ledger of N entries through the real sequencer, cached under bench/out/.

Every entry is signed by ``bench.world`` in worker processes just before it is appended (entries
must lie within five minutes of the block that seals them) and appended with
``Sequencer.append_many``: real parsing, real signature checks, real blocks of up to 4000 entries.
The cache key hashes the code that decides what the ledger holds (``ledger/``, ``keys/``, the world
and this builder), so a change to any of it rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from api.node import Node
from bench.world import SigningPool, World
from ledger.errors import LedgerError
from ledger.sequencer import Sequencer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
CODE = ["ledger", "keys", "bench/world.py", "bench/build.py"]


def code_version() -> str:
    """A short hash of the code a cached ledger depends on."""
    h = hashlib.sha256()
    for part in CODE:
        path = ROOT / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


@dataclass
class Ledger:
    """A built ledger: its database URL, the node home holding its keys, and how it was made."""

    path: Path
    entries: int
    blocks: int
    build_seconds: float
    cached: bool

    @property
    def db(self) -> str:
        return f"sqlite:///{self.path / 'ledger.db'}"

    @property
    def home(self) -> Path:
        return self.path / "home"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def world_for(size: int, admin_seed: bytes, service_seed: bytes) -> World:
    citizens = 5000 if size >= 100_000 else max(50, size // 5)
    departments = 40 if size >= 10_000 else 10
    return World(admin_seed, service_seed, departments=departments, citizens=citizens)


def latest_built(size: int) -> Path | None:
    """The most recently built ledger of ``size`` entries, whatever code version made it."""
    found = sorted(
        (p for p in (OUT / "ledgers").glob(f"{size}-*") if (p / "built.json").exists()),
        key=lambda p: (p / "built.json").stat().st_mtime,
    )
    return found[-1] if found else None


def latest_partial(size: int) -> Path | None:
    """The most recent interrupted build of ``size`` entries (a database, no ``built.json``)."""
    found = sorted(
        (
            p
            for p in (OUT / "ledgers").glob(f"{size}-*")
            if (p / "ledger.db").exists() and not (p / "built.json").exists()
        ),
        key=lambda p: (p / "ledger.db").stat().st_mtime,
    )
    return found[-1] if found else None


def build(size: int, *, reuse: bool = True, any_version: bool = False, chunk: int = 4_000) -> Ledger:
    """A ledger of exactly ``size`` entries (cached by code version when ``reuse``).

    With ``any_version`` a cached ledger built by other code is reused too (for measuring the
    verifier, which checks whatever ledger it is given; the ledger's own code version then differs),
    and an interrupted build of any version is resumed. With ``reuse`` an interrupted build of this
    code version is resumed where it stopped: the world's entries are a pure function of their index.
    """
    path = OUT / "ledgers" / f"{size}-{code_version()}"
    marker = path / "built.json"
    if reuse and not marker.exists() and any_version:
        path = latest_built(size) or latest_partial(size) or path
        marker = path / "built.json"
    if reuse and marker.exists():
        info = json.loads(marker.read_text())
        _log(f"ledger of {size} entries: reusing {path.relative_to(ROOT)}")
        return Ledger(path, info["entries"], info["blocks"], info["build_seconds"], True)
    resume = reuse and (path / "ledger.db").exists()
    if not resume:
        if path.exists():
            shutil.rmtree(path)
        for stale in (OUT / "ledgers").glob(f"{size}-*") if (OUT / "ledgers").exists() else []:
            shutil.rmtree(stale)  # other code versions of this size
        path.mkdir(parents=True)
    os.environ.setdefault("SHULIAN_PASSPHRASE", "shulian-bench")
    t0 = time.perf_counter()
    node = Node(f"sqlite:///{path / 'ledger.db'}", path / "home")
    node.init()
    world = world_for(size, bytes(node.local_key("admin").signing), bytes(node.local_key("service").signing))
    seq = node.sequencer
    pool = SigningPool(world)
    try:
        have = node.reader.size()
        base = _traffic_start(node) if resume else None
        if base is None:  # a fresh ledger (or one interrupted before its world was registered)
            if resume and have > 0:
                raise RuntimeError(f"cannot resume {path}: its world's setup is incomplete; delete it")
            setup = min(world.setup_size, size - have)
            _append(seq, pool.sign("setup", 0, setup))
            have += setup
            start = 0
        else:
            start = have - base
            _log(f"  resuming {path.relative_to(ROOT)} at {have} entries (traffic entry {start})")
        done, last = 0, time.perf_counter()
        batch: list[bytes] = []
        for piece in pool.sign_stream("traffic", start, size - have, piece=1000, window=4):
            batch.extend(piece)
            if len(batch) >= chunk:
                _append(seq, batch)
                done += len(batch)
                batch = []
                if time.perf_counter() - last > 10:
                    rate = done / (time.perf_counter() - t0)
                    _log(f"  building {size}: {have + done} entries ({rate:.0f}/s)")
                    last = time.perf_counter()
        _append(seq, batch)
    finally:
        pool.close()
    entries = node.reader.size()
    with node.store.reader() as conn:
        blocks = int(conn.exec_driver_sql("SELECT count(*) FROM blocks").scalar_one())
    node.close()
    if entries != size:
        raise RuntimeError(f"built {entries} entries, wanted {size}")
    seconds = time.perf_counter() - t0
    marker.write_text(json.dumps({"entries": entries, "blocks": blocks, "build_seconds": seconds}))
    _log(f"ledger of {size} entries built in {seconds:.1f} s ({blocks} blocks)")
    return Ledger(path, entries, blocks, seconds, False)


def _traffic_start(node: Node) -> int | None:
    """The seq of the first traffic entry: after the world's last dataset.register (None: no setup yet)."""
    with node.store.reader() as conn:
        last = conn.exec_driver_sql("SELECT max(seq) FROM entries WHERE type = 'dataset.register'").scalar()
    return None if last is None else int(last) + 1


def _append(seq: Sequencer, leaves: list[bytes]) -> None:
    if not leaves:
        return
    for result in seq.append_many(leaves):
        if isinstance(result, LedgerError):
            raise RuntimeError(f"the sequencer refused a bench entry: {result}")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    print(build(n, reuse="--fresh" not in sys.argv, any_version="--any-version" in sys.argv))
