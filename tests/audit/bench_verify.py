"""Measure offline verification: throughput, CPU per entry and peak RSS, against PyNaCl's own verify rate.

    python -m tests.audit.bench_verify --dir /tmp/bench200k --entries 200000

Builds the ledger once (``LedgerFactory`` through the real sequencer, 4000 entries a block) and its
export, then runs each case in a fresh process: sequential and parallel, from the database and from the
export, with and without the consent replay. The PyNaCl rate is measured in the same moment, so a
loaded machine shows in both. Prints one JSON object per case.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def pynacl_rate(seconds: float = 1.0) -> float:
    """Single-core Ed25519 verifications per second (PyNaCl), over a 470-byte message."""
    import nacl.signing

    key = nacl.signing.SigningKey.generate()
    message = b"x" * 470
    signature = key.sign(message).signature
    verify = key.verify_key.verify
    count = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        for _ in range(500):
            verify(message, signature)
        count += 500
    return count / (time.process_time() - start)


def build(directory: Path, entries: int) -> None:
    os.environ["SHULIAN_HOME"] = str(directory / "home")
    os.environ.setdefault("SHULIAN_PASSPHRASE", "bench")
    from api.node import Node
    from audit.export import write_export
    from tests.audit.factory import LedgerFactory

    node = Node(f"sqlite:///{directory / 'ledger.db'}", directory / "home")
    node.init(origin="bench.example/log")
    LedgerFactory(node, seed=7, citizens=200).build(entries, batch=4000)
    write_export(node.store, directory / "export.jsonl", progress=False)
    node.close()


def run_case(directory: Path, source: str, workers: int | None, consent: bool) -> dict[str, Any]:
    """One verification in this process; report what it cost."""
    from audit.sources import verify_database, verify_export
    from ledger.store import Store

    rate_before = pynacl_rate()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if source == "database":
        store = Store(f"sqlite:///{directory / 'ledger.db'}")
        result = verify_database(store, progress=False, workers=workers, consent=consent)
        store.close()
    else:
        result = verify_export(directory / "export.jsonl", progress=False, workers=workers, consent=consent)
    wall = time.perf_counter() - start
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    rate = (rate_before + pynacl_rate()) / 2
    main_cpu = me.ru_utime + me.ru_stime - before.ru_utime - before.ru_stime
    worker_cpu = children.ru_utime + children.ru_stime
    n = max(result.entries, 1)
    return {
        "source": source,
        "workers": workers,
        "consent": consent,
        "ok": result.ok,
        "entries": result.entries,
        "seconds": round(wall, 2),
        "entries_per_s": round(result.entries / wall),
        "pynacl_verify_per_s": round(rate),
        "ratio_to_pynacl": round(result.entries / wall / rate, 3),
        "cpu_us_per_entry_main": round(main_cpu / n * 1e6, 1),
        "cpu_us_per_entry_workers": round(worker_cpu / n * 1e6, 1),
        "peak_rss_mb_main": round(me.ru_maxrss / 1024),
        "peak_rss_mb_worker": round(children.ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--case", help="internal: source,workers,consent")
    args = parser.parse_args()
    if args.case:
        source, workers, consent = args.case.split(",")
        print(json.dumps(run_case(args.dir, source, None if workers == "auto" else int(workers), consent == "1")))
        return
    if not (args.dir / "export.jsonl").exists():
        args.dir.mkdir(parents=True, exist_ok=True)
        build(args.dir, args.entries)
    for case in ("database,0,0", "database,auto,0", "export,auto,0", "database,auto,1", "export,auto,1"):
        out = subprocess.run(
            [sys.executable, "-m", "tests.audit.bench_verify", "--dir", str(args.dir), "--case", case],
            capture_output=True,
            text=True,
            check=True,
        )
        print(out.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
