"""A writer process for the concurrency and crash tests: appends record.commit entries and prints each ack.

Run as ``python -m tests.storage.writer DB_URL LABEL COUNT THREADS`` with SHULIAN_HOME and
SHULIAN_PASSPHRASE set (the node's log key is read from SHULIAN_HOME). The signing key is the
deterministic test key ``LABEL`` (already registered as a department). Each acknowledged append is
printed, flushed, as ``<seq> <leaf hash hex>`` only after ``append`` returned, i.e. after its commit.
COUNT 0 appends until killed. Exit status 0 when done, 1 on the first refused append.
"""

from __future__ import annotations

import itertools
import sys
import threading

from api.node import Node
from tests.support import record_entry, stored_key


def main(argv: list[str]) -> int:
    url, label, count, threads = argv[0], argv[1], int(argv[2]), int(argv[3])
    key = stored_key(label, "department")
    node = Node(url)
    lock = threading.Lock()
    failures: list[str] = []
    print("ready", flush=True)

    def work(t: int) -> None:
        numbers = itertools.count() if count == 0 else range(count)
        for i in numbers:
            try:
                receipt = node.append(record_entry(key, i, tag=f"{label}-{t}"))
            except Exception as exc:  # reported, then the process exits non-zero
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                return
            with lock:
                sys.stdout.write(f"{receipt.seq} {receipt.leaf_hash.hex()}\n")
                sys.stdout.flush()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    node.close()
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
