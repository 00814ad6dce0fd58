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


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            pid = int(entry.name)
            children.setdefault(int(fields[1]), []).append(pid)
            rss[pid] = int((entry / "statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


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
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
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
        "rss_note": "peak of the summed RSS of the verifier process and its workers, sampled from /proc every 50 ms",
    }
