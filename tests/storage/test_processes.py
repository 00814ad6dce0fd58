"""Real processes on one database: concurrent writers, and a writer killed with SIGKILL mid-commit.

Each writer is ``python -m tests.storage.writer`` (see there); it prints a line per acknowledged
append. Afterwards the whole ledger is checked from its stored bytes (``tests.support.check_ledger``)
and, where the audit package provides one, by its whole-database verifier too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api.node import Node
from tests.support import audit_verify, check_ledger, record_entry, register

ROOT = Path(__file__).resolve().parents[2]


def writer(url: str, label: str, count: int, threads: int) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storage.writer", url, label, str(count), str(threads)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def acks_of(output: str) -> dict[int, str]:
    acks: dict[int, str] = {}
    for line in output.splitlines():
        if line == "ready" or not line:
            continue
        seq_text, digest = line.split(" ")
        seq = int(seq_text)
        assert seq not in acks, f"seq {seq} acknowledged twice"
        acks[seq] = digest
    return acks


def verify_everything(url: str, acks: dict[int, str]) -> None:
    summary = check_ledger(url)
    for seq, digest in acks.items():
        assert seq < summary.size, f"acknowledged seq {seq} is missing (ledger size {summary.size})"
        assert summary.leaf_hashes[seq].hex() == digest, f"seq {seq} holds another entry than the one acknowledged"
    audit_verify(url, summary.size)


@pytest.mark.slow
def test_concurrent_writer_processes(node: Node, ledger_url: str) -> None:
    labels = [f"writer-{i}" for i in range(4)]
    for label in labels:
        register(node, label, "department")
    start = node.reader.size()
    procs = [writer(ledger_url, label, 20, 3) for label in labels]
    # the parent appends at the same time, through its own sequencer
    parent_key = register(node, "parent", "department")
    parent_acks = {r.seq: r.leaf_hash.hex() for r in (node.append(record_entry(parent_key, i)) for i in range(15))}
    acks: dict[int, str] = {}
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        for seq, digest in acks_of(out).items():
            assert seq not in acks, f"seq {seq} acknowledged to two processes"
            acks[seq] = digest
    assert len(acks) == 4 * 3 * 20
    assert not set(acks) & set(parent_acks), "a seq was acknowledged to a writer and to the parent"
    acks.update(parent_acks)
    summary = check_ledger(ledger_url)
    assert summary.size == start + 1 + 240 + 15  # + the parent's registration of its key
    verify_everything(ledger_url, acks)


@pytest.mark.slow
def test_writer_killed_mid_commit_loses_no_acknowledged_entry(node: Node, ledger_url: str) -> None:
    register(node, "victim", "department")
    acks: dict[int, str] = {}
    for round_ in range(3):
        proc = writer(ledger_url, "victim", 0, 4)
        assert proc.stdout is not None
        wanted = 25 + 10 * round_
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while len(lines) < wanted + 1:  # + "ready"
            line = proc.stdout.readline()
            if not line:
                _, err = proc.communicate(timeout=10)
                pytest.fail(f"writer exited early: {err}")
            lines.append(line.rstrip("\n"))
            assert time.monotonic() < deadline, "writer too slow"
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # acks printed between our last read and the kill count too
        round_acks = acks_of("\n".join(lines) + "\n" + out)
        assert len(round_acks) >= wanted
        assert not set(round_acks) & set(acks)
        acks.update(round_acks)
        verify_everything(ledger_url, acks)
    # the ledger still takes appends after the crashes, from a fresh node and from the old one
    survivor = register(node, "survivor", "department")
    receipt = node.append(record_entry(survivor, 1))
    assert receipt.seq == check_ledger(ledger_url).size - 1
    verify_everything(ledger_url, acks)
