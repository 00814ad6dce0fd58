"""`make bench` / `python -m bench.run --only fuzz`: the longer schemathesis run over the OpenAPI document.

A fresh SQLite ledger with the demo city (so generated requests meet real datasets, records and
agreements), served by uvicorn on loopback; ``tests.fuzz.harness`` generates cases for every
operation (schema-conforming and schema-violating), signs them in turn with an auditor's, a
department's and a citizen's registered key or not at all, and checks every answer: no 5xx, a
documented status, media type and schema. Reported: operations, cases, failures (the first ones
with a curl line to reproduce them), statuses seen.

``SHULIAN_BENCH_FUZZ_EXAMPLES`` (default 25) cases per operation and mode, ``SHULIAN_BENCH_FUZZ_SEED``
(default 20261129) the seed, ``SHULIAN_BENCH_FUZZ_DEMO=0`` to skip the demo city.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.build import OUT

EXAMPLES = int(os.environ.get("SHULIAN_BENCH_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("SHULIAN_BENCH_FUZZ_SEED", "20261129"))


def fuzz_figures(examples: int = EXAMPLES, seed: int = SEED, *, demo: bool | None = None) -> dict[str, Any]:
    from api.demo import seed_demo
    from api.node import Node
    from tests.fuzz.harness import fuzz

    if demo is None:
        demo = os.environ.get("SHULIAN_BENCH_FUZZ_DEMO", "1") != "0"
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-", dir=OUT))
    os.environ.setdefault("SHULIAN_PASSPHRASE", "shulian-bench")
    node = Node(f"sqlite:///{tmp / 'ledger.db'}", tmp / "home")
    try:
        node.init(origin="fuzz.shulian.example/log")
        if demo:
            seed_demo(node)
        t0 = time.perf_counter()
        report = fuzz(node, max_examples=examples, seed=seed)
        out = report.to_json()
        out.update(examples_per_operation=examples, seed=seed, demo=demo, seconds=round(time.perf_counter() - t0, 1))
        return out
    finally:
        node.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import json

    figures = fuzz_figures(int(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLES)
    print(json.dumps(figures, ensure_ascii=False, indent=1))
