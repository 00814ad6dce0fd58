"""The parallel runner gives the sequential verdict, good or tampered, and falls back when a worker dies."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.node import Node
from audit.export import write_export
from audit.parallel import STEAL_SPLIT, ParallelFeed, verify_streams
from audit.sources import verify_database, verify_export
from audit.verifier import LedgerVerifier, RawBlock, RawEntry, VerificationResult, verify_ledger
from ledger.envelope import sign_envelope
from tests.audit.chain import ORIGIN, Chain, key, register_body
from tests.audit.factory import LedgerFactory


def big_chain() -> Chain:
    """About 3000 entries in 7 blocks; citizens registered mid-way sign at once and much later."""
    chain = Chain()
    chain.seal()
    citizens = [key(f"citizen{i}", "citizen") for i in range(4)]
    for block in range(6):
        chain.records(250)
        for c in citizens[block % 2 :: 2] if block < 2 else []:
            reg = register_body(c, "citizen")
            chain.add(sign_envelope(chain.admin.signing, "identity.register", reg, ts=chain.ts()))
            chain.add(sign_envelope(c.signing, "consent.grant", {"n": block}, ts=chain.ts()))
        chain.records(250)
        for c in citizens if block >= 2 else []:
            chain.add(sign_envelope(c.signing, "consent.grant", {"n": block, "late": True}, ts=chain.ts()))
        chain.seal()
    return chain


@pytest.fixture(scope="module")
def chain() -> Chain:
    return big_chain()


def both(
    chain: Chain, entries: list[RawEntry], blocks: list[RawBlock]
) -> tuple[VerificationResult, VerificationResult]:
    sequential = verify_ledger(chain.vkey, ORIGIN, entries, blocks)
    parallel = verify_streams(chain.vkey, ORIGIN, iter(entries), iter(blocks), workers=2, threshold=0)
    return sequential, parallel


def test_good_chain_same_verdict(chain: Chain) -> None:
    sequential, parallel = both(chain, chain.entries(), chain.blocks)
    assert sequential.ok, sequential.message
    assert parallel == sequential
    assert parallel.entries == len(chain.leaves) > 3000


def flip(leaf: bytes) -> bytes:
    at = leaf.index(b'"body":{') + 12
    return leaf[:at] + bytes([leaf[at] ^ 0x01]) + leaf[at + 1 :]


def tampered_cases(chain: Chain) -> dict[str, tuple[list[RawEntry], list[RawBlock]]]:
    entries, blocks = chain.entries(), chain.blocks
    late = next(s for s, leaf in entries if b'"late":true' in leaf)
    _label, header, note = blocks[4]
    return {
        "flipped leaf": ([(s, flip(x) if s == 2222 else x) for s, x in entries], blocks),
        "flipped late-key leaf": ([(s, flip(x) if s == late else x) for s, x in entries], blocks),
        "missing entry": ([e for e in entries if e[0] != 1500], blocks),
        "altered header": (entries, [*blocks[:4], (4, {**header, "first_seq": 0}, note), *blocks[5:]]),
        "missing block": (entries, [*blocks[:3], *blocks[4:]]),
        "unsealed tail": (entries, blocks[:-1]),
        "garbage leaf": ([(s, b"garbage" if s == 2901 else x) for s, x in entries], blocks),
    }


@pytest.mark.parametrize(
    "case",
    [
        "flipped leaf",
        "flipped late-key leaf",
        "missing entry",
        "altered header",
        "missing block",
        "unsealed tail",
        "garbage leaf",
    ],
)
def test_tampered_chain_same_verdict(chain: Chain, case: str) -> None:
    entries, blocks = tampered_cases(chain)[case]
    sequential, parallel = both(chain, entries, blocks)
    assert not sequential.ok
    assert parallel == sequential


def test_small_ledger_starts_no_workers(chain: Chain) -> None:
    verifier = LedgerVerifier(chain.vkey, ORIGIN)
    with ParallelFeed(verifier, chain.entries(), chain.blocks, workers=2, threshold=10_000) as feed:
        result = verifier.run(feed.entries(), feed.blocks())
        assert not feed.started
    assert result.ok


def test_switch_to_workers_mid_way(chain: Chain) -> None:
    verifier = LedgerVerifier(chain.vkey, ORIGIN)
    with ParallelFeed(verifier, chain.entries(), chain.blocks, workers=2, threshold=700, chunk=300) as feed:
        result = verifier.run(feed.entries(), feed.blocks())
        assert feed.started
    assert result == verify_ledger(chain.vkey, ORIGIN, chain.entries(), chain.blocks)


def test_dead_worker_falls_back_to_this_process(chain: Chain) -> None:
    verifier = LedgerVerifier(chain.vkey, ORIGIN)
    holder: list[ParallelFeed] = []

    def entries() -> Iterator[RawEntry]:
        for seq, leaf in chain.entries():
            if seq == 2000:
                for proc in holder[0]._procs:
                    proc.kill()
            yield seq, leaf

    with ParallelFeed(verifier, entries(), chain.blocks, workers=2, threshold=0, chunk=200) as feed:
        holder.append(feed)
        with pytest.warns(RuntimeWarning, match="checking the rest in this process"):
            result = verifier.run(feed.entries(), feed.blocks())
    assert result == verify_ledger(chain.vkey, ORIGIN, chain.entries(), chain.blocks)


def run_with_worker_stopped(chain: Chain, raw: list[RawEntry]) -> tuple[VerificationResult, int]:
    """Verify ``raw`` with one worker, stopped (SIGSTOP) for a second once it has its first chunk."""
    verifier = LedgerVerifier(chain.vkey, ORIGIN)
    holder: list[ParallelFeed] = []
    resume: list[threading.Timer] = []

    def source() -> Iterator[RawEntry]:
        for seq, leaf in raw:
            if seq == 1:  # read for the first chunk sent: the worker has just started
                pid = holder[0]._procs[0].pid
                os.kill(pid, signal.SIGSTOP)
                resume.append(threading.Timer(1.0, os.kill, (pid, signal.SIGCONT)))
                resume[0].start()
            yield seq, leaf

    with ParallelFeed(verifier, source(), chain.blocks, workers=1, threshold=0, chunk=200, depth=2) as feed:
        holder.append(feed)
        result = verifier.run(feed.entries(), feed.blocks())
    resume[0].join()
    return result, feed.stolen


def test_replay_checks_chunks_itself_while_its_worker_is_behind(chain: Chain) -> None:
    """The replay checks the chunks past the window itself instead of waiting, with the same verdict."""
    entries = chain.entries()
    tampered = [(s, flip(x) if s == 500 else x) for s, x in entries]  # in the first chunk checked here
    for raw, expected_ok in ((entries, True), (tampered, False)):
        result, stolen = run_with_worker_stopped(chain, raw)
        assert stolen >= 2 * STEAL_SPLIT  # the chunks past the window, while the worker was stopped
        assert result.ok is expected_ok
        assert result == verify_ledger(chain.vkey, ORIGIN, raw, chain.blocks)
    assert "seq 500" in result.message


def test_workers_are_out_of_the_terminals_reach(chain: Chain) -> None:
    """Ctrl-C goes to the terminal's foreground process group: the workers are in groups of their own."""
    verifier = LedgerVerifier(chain.vkey, ORIGIN)
    with ParallelFeed(verifier, chain.entries(), chain.blocks, workers=2, threshold=0, chunk=200) as feed:
        result = verifier.run(feed.entries(), feed.blocks())
        groups = {os.getpgid(proc.pid) for proc in feed._procs}
        assert groups == {proc.pid for proc in feed._procs}
        assert os.getpgid(0) not in groups
    assert result.ok, result.message


# -- from a database ----------------------------------------------------------------------------


@pytest.fixture
def node(sqlite_url: str, shulian_home: Path) -> Iterator[Node]:
    n = Node(sqlite_url, shulian_home)
    n.init(origin="parallel.test/log")
    LedgerFactory(n, seed=5, citizens=40).build(3000, batch=700)
    try:
        yield n
    finally:
        n.close()


def test_database_parallel_same_verdict(node: Node, tmp_path: Path) -> None:
    sequential = verify_database(node.store, progress=False, workers=0)
    parallel = verify_database(node.store, progress=False, workers=2, threshold=0)
    assert sequential.ok, sequential.message
    assert parallel == sequential
    path = write_export(node.store, tmp_path / "e.jsonl", progress=False).path
    assert verify_export(path, progress=False, workers=2, threshold=0) == sequential


def test_tampered_database_parallel_same_verdict(node: Node, tmp_path: Path) -> None:
    path = write_export(node.store, tmp_path / "e.jsonl", progress=False).path
    lines = path.read_bytes().splitlines(keepends=True)
    value = json.loads(lines[1 + 2500])
    value["leaf"] = base64.b64encode(flip(base64.b64decode(value["leaf"]))).decode()
    lines[1 + 2500] = json.dumps(value).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    sequential = verify_export(path, progress=False, workers=0)
    parallel = verify_export(path, progress=False, workers=2, threshold=0)
    assert sequential.message.startswith("seq 2500: ")
    assert parallel == sequential
