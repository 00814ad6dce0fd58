"""The offline verifier's throughput and peak memory over a built ledger (run in a child process)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")


def verifier_available() -> str | None:
    """None if ``audit.sources.verify_database`` can be imported, else why not."""
    try:
        if importlib.util.find_spec("audit.sources") is None:
            return "audit.sources does not exist yet"
        import audit.sources
    except Exception as exc:  # the other team's module may be mid-change
        return f"audit.sources does not import: {exc!r}"
    if not hasattr(audit.sources, "verify_database"):
        return "audit.sources has no verify_database yet"
    return None


def _pss(pid: int) -> int:
    """Proportional set size: pages shared with forked workers counted once across the tree."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree(root: int) -> list[int]:
    """``root`` and its descendants, by each task's ``children`` file (a few reads, not a scan of /proc)."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def verify_figures(db: str, entries: int, *, timeout: float = 600) -> dict[str, Any]:
    """Run the verifier over ``db`` in a child; its rate (entries/s) and the peak RSS of its process tree."""
    why = verifier_available()
    if why is not None:
        return {"per_s": None, "rss_mb": None, "reason": why}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.verify_child", db], stdout=subprocess.PIPE, env=env, text=True
    )
    peak = peak_pss = 0
    stop = threading.Event()

    def watch() -> None:
        """Sample the tree's summed RSS every 50 ms and its PSS every 0.5 s. The sampling takes CPU from
        the verifier on a 2-core machine: scanning all of /proc every 50 ms cost 15 % of a core, so the
        tree is found through its children files and PSS (the kernel walks every page for it) is read
        ten times less often."""
        nonlocal peak, peak_pss
        tick = 0
        while not stop.is_set():
            pids = _tree(proc.pid)
            peak = max(peak, sum(_rss(pid) for pid in pids))
            if tick % 10 == 0:
                peak_pss = max(peak_pss, sum(_pss(pid) for pid in pids))
            tick += 1
            stop.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"per_s": None, "rss_mb": round(peak / 2**20, 1), "reason": f"verifier took over {timeout:.0f} s"}
    finally:
        stop.set()
        watcher.join()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        return {"per_s": None, "rss_mb": round(peak / 2**20, 1), "reason": f"verifier exited {proc.returncode}"}
    result = json.loads(out.strip().splitlines()[-1])
    if not result["ok"] or result["entries"] != entries:
        return {"per_s": None, "rss_mb": round(peak / 2**20, 1), "reason": f"verifier said: {result['message']}"}
    return {
        "per_s": round(entries / result["seconds"], 1),
        "rss_mb": round(peak / 2**20, 1),
        "seconds": round(result["seconds"], 2),
        "process_seconds": round(wall, 2),
        "entries": entries,
        "pss_mb": round(peak_pss / 2**20, 1),
        "rss_note": "rss_mb: peak of the summed RSS of the verifier process and its workers (pages shared "
        "between them counted in each), sampled from /proc every 50 ms; pss_mb: the same with shared pages "
        "split (what the tree really occupies), sampled every 0.5 s",
    }
