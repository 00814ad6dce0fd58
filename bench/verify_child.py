"""Child process for the verify figure: ``python -m bench.verify_child DB_URL`` prints one JSON line.

Runs ``audit.sources.verify_database`` (the offline verifier, with whatever worker processes it
starts) over the database and reports the verdict and its own wall time; the parent measures the
peak resident memory of this process and its descendants.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    from audit.sources import verify_database
    from ledger.store import Store

    store = Store(sys.argv[1])
    t = time.perf_counter()
    result = verify_database(store, progress=True)
    seconds = time.perf_counter() - t
    store.close()
    print(
        json.dumps({"ok": bool(result.ok), "message": result.message, "entries": result.entries, "seconds": seconds}),
        flush=True,
    )


if __name__ == "__main__":
    main()
