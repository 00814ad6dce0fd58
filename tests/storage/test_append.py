"""Appends on SQLite and PostgreSQL: contiguous seqs, one block per commit, proofs served by LogReader."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from api.node import Node
from ledger import sodium
from ledger.canonical import canonical_bytes
from ledger.errors import DuplicateEntryError, LedgerError, NotFoundError, RangeError, SignatureError
from ledger.log import LogReader
from ledger.note import verify_checkpoint
from ledger.sequencer import Receipt, Sequencer
from ledger.tree import leaf_hash, verify_consistency, verify_inclusion
from tests.support import check_ledger, counts, record_entry, register


def test_init_creates_genesis_and_is_idempotent(node: Node, ledger_url: str, shulian_home: Path) -> None:
    summary = check_ledger(ledger_url)
    assert summary.size == 2 and summary.blocks == 1  # genesis admin + service key, sealed together
    before = counts(node.store)
    again = Node(ledger_url, shulian_home)
    try:
        assert again.init() is False
        assert counts(again.store) == before
    finally:
        again.close()


def test_appends_get_contiguous_seqs_and_one_block_each(node: Node, ledger_url: str) -> None:
    dept = register(node, "dept", "department")
    start = counts(node.store)
    receipts = [node.append(record_entry(dept, i)) for i in range(12)]
    assert [r.seq for r in receipts] == list(range(start.entries, start.entries + 12))
    assert [r.tree_size for r in receipts] == [r.seq + 1 for r in receipts]
    assert [r.height for r in receipts] == list(range(start.blocks, start.blocks + 12))
    after = counts(node.store)
    assert (after.entries, after.blocks) == (start.entries + 12, start.blocks + 12)
    vkey = node.reader.vkey
    for r in receipts:
        cp = verify_checkpoint(r.checkpoint, vkey)
        assert cp.size == r.tree_size
    check_ledger(ledger_url)


def test_a_group_commit_seals_one_block(node: Node, ledger_url: str) -> None:
    dept = register(node, "dept", "department")
    start = counts(node.store)
    results = node.sequencer.append_many([record_entry(dept, i) for i in range(50)])
    receipts = [r for r in results if isinstance(r, Receipt)]
    assert len(receipts) == 50
    assert [r.seq for r in receipts] == list(range(start.entries, start.entries + 50))
    assert {(r.height, r.tree_size, r.checkpoint) for r in receipts} == {
        (start.blocks, start.entries + 50, receipts[0].checkpoint)
    }
    assert counts(node.store).blocks == start.blocks + 1
    summary = check_ledger(ledger_url)
    assert summary.size == start.entries + 50


def test_threads_share_group_commits(node: Node, ledger_url: str) -> None:
    dept = register(node, "dept", "department")
    leaves = [record_entry(dept, i, tag="thread") for i in range(80)]
    receipts: list[Receipt] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(chunk: list[bytes]) -> None:
        try:
            for leaf in chunk:
                r = node.append(leaf)
                with lock:
                    receipts.append(r)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(leaves[i::8],)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    assert len(receipts) == 80
    seqs = sorted(r.seq for r in receipts)
    assert seqs == list(range(seqs[0], seqs[0] + 80))
    summary = check_ledger(ledger_url)
    for r in receipts:
        assert summary.leaf_hashes[r.seq] == r.leaf_hash


def test_served_proofs_verify_against_checkpoints(node: Node) -> None:
    dept = register(node, "dept", "department")
    receipts = [node.append(record_entry(dept, i)) for i in range(20)]
    receipts += [
        r
        for r in node.sequencer.append_many([record_entry(dept, i, tag="b") for i in range(13)])
        if isinstance(r, Receipt)
    ]
    reader = LogReader(node.store)
    vkey = reader.vkey
    size, note = reader.checkpoint()
    latest = verify_checkpoint(note, vkey)
    assert latest.size == size == receipts[-1].tree_size
    # every checkpoint a receipt carried is consistent with the latest one, and with every other
    seen = {r.tree_size: verify_checkpoint(r.checkpoint, vkey).root for r in receipts}
    seen[size] = latest.root
    for a in seen:
        assert reader.root(a) == seen[a]
        for b in seen:
            if a <= b:
                verify_consistency(a, b, seen[a], seen[b], reader.consistency(a, b))
    # every entry is included in the latest tree and in the tree of its own receipt
    for r in receipts:
        proof = reader.inclusion(r.leaf_hash)
        assert (proof.seq, proof.tree_size) == (r.seq, size)
        verify_inclusion(r.seq, size, r.leaf_hash, proof.hashes, latest.root)
        own = reader.inclusion(r.leaf_hash, r.tree_size)
        verify_inclusion(r.seq, r.tree_size, r.leaf_hash, own.hashes, seen[r.tree_size])


def test_reader_refuses_what_it_does_not_hold(node: Node) -> None:
    dept = register(node, "dept", "department")
    late = node.append(record_entry(dept, 1))
    reader = LogReader(node.store)
    size = reader.size()
    with pytest.raises(NotFoundError):
        reader.inclusion(leaf_hash(b"never appended"))
    with pytest.raises(NotFoundError):
        reader.inclusion(late.leaf_hash, late.seq)  # not within the first seq entries
    for bad in (0, size + 1):
        with pytest.raises(RangeError):
            reader.inclusion(late.leaf_hash, bad)
    for first, second in [(0, 1), (2, 1), (1, size + 1)]:
        with pytest.raises(RangeError):
            reader.consistency(first, second)
    assert reader.consistency(size, size) == []
    with pytest.raises(LedgerError):
        reader.root(size + 1)


def test_reader_before_init(ledger_url: str, shulian_home: Path) -> None:
    n = Node(ledger_url, shulian_home)
    try:
        n.store.create_schema()
        with pytest.raises(NotFoundError):
            n.reader.checkpoint()
        with pytest.raises(NotFoundError):
            _ = n.reader.origin
        assert n.reader.size() == 0
    finally:
        n.close()


def test_batches_larger_than_max_batch_are_split(node: Node, ledger_url: str) -> None:
    dept = register(node, "dept", "department")
    start = counts(node.store)
    seq = Sequencer(node.store, node.local_key("log").signing, node.reader.origin, max_batch=7)
    results = seq.append_many([record_entry(dept, i) for i in range(30)])
    assert all(isinstance(r, Receipt) for r in results)
    receipts = [r for r in results if isinstance(r, Receipt)]
    assert [r.seq for r in receipts] == list(range(start.entries, start.entries + 30))
    assert [len([r for r in receipts if r.height == h]) for h in sorted({r.height for r in receipts})] == [
        7,
        7,
        7,
        7,
        2,
    ]
    check_ledger(ledger_url)


def test_many_threads_hand_the_lead_over(node: Node, ledger_url: str) -> None:
    """Small batches force many leader hand-overs between threads; every append is answered once."""
    dept = register(node, "dept", "department")
    seq = Sequencer(node.store, node.local_key("log").signing, node.reader.origin, max_batch=3)
    receipts: list[Receipt] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        try:
            for i in range(25):
                if i % 5 == 4:
                    out = seq.append_many([record_entry(dept, i, tag=f"m{t}"), record_entry(dept, i, tag=f"n{t}")])
                    got = [r for r in out if isinstance(r, Receipt)]
                    assert len(got) == 2, out
                else:
                    got = [seq.append(record_entry(dept, i, tag=f"t{t}"))]
                with lock:
                    receipts.extend(got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not any(th.is_alive() for th in threads), "a thread never got its answer"
    assert not errors, errors
    assert len(receipts) == 8 * 30
    seqs = sorted(r.seq for r in receipts)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    summary = check_ledger(ledger_url)
    assert all(summary.leaf_hashes[r.seq] == r.leaf_hash for r in receipts)
    for r in receipts:  # each answer's proof, from its batch's nodes, is the stored tree's proof
        assert r.inclusion() == node.reader.inclusion(r.leaf_hash, r.tree_size).hashes


def test_a_builder_repeating_an_entry_is_refused_alone(node: Node, ledger_url: str) -> None:
    """A builder's entries are looked up on the ledger once per batch, after the builders ran: one that
    repeats a stored entry is refused with its seq, nothing of it is written, and builders queued beside
    it commit. (A sequencer without the consent rules, so that only the ledger's own check can see it.)"""
    seq = Sequencer(node.store, node.local_key("log").signing, node.reader.origin)
    dept = register(node, "builder-dept", "department")
    stored = record_entry(dept, 0, tag="built")
    at = seq.append(stored).seq
    before = node.reader.size()
    with pytest.raises(DuplicateEntryError, match=f"at seq {at}"):
        seq.transact(lambda ctx: [record_entry(dept, 1, tag="built"), stored])
    assert node.reader.size() == before  # all or nothing: the builder's fresh entry is not written either

    results: dict[int, object] = {}

    def work(i: int) -> None:
        leaves = [stored] if i == 3 else [record_entry(dept, 10 + i, tag="built")]
        try:
            results[i] = seq.transact(lambda ctx: leaves)
        except LedgerError as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(results.pop(3), DuplicateEntryError)
    assert all(isinstance(r, list) and len(r) == 1 for r in results.values())
    assert node.reader.size() == before + 7
    check_ledger(ledger_url)


def test_a_builder_entry_is_verified_unless_signed_with_an_own_key(
    node: Node, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``own_keys``: a builder's entry signed with a key this process holds is not verified again; any
    other builder entry is, and so is every submitted entry, own key or not."""
    own = register(node, "own-dept", "department")
    other = register(node, "other-dept", "department")
    seq = Sequencer(
        node.store, node.local_key("log").signing, node.reader.origin, own_keys=[own.signing.verify_key.encode()]
    )

    def broken(leaf: bytes) -> bytes:
        doc = json.loads(leaf)
        sig = bytearray(base64.b64decode(doc["sig"]))
        sig[0] ^= 1
        doc["sig"] = base64.b64encode(bytes(sig)).decode()
        return canonical_bytes(doc)

    before = node.reader.size()
    with pytest.raises(SignatureError):
        seq.transact(lambda ctx: [broken(record_entry(other, 0, tag="own"))])
    with pytest.raises(SignatureError):
        seq.append(broken(record_entry(own, 1, tag="own")))
    assert node.reader.size() == before
    checked: list[bytes] = []
    real = sodium.verify

    def counting(pub: bytes, message: bytes, sig: bytes, *, release_gil: bool = False) -> bool:
        checked.append(pub)
        return real(pub, message, sig, release_gil=release_gil)

    monkeypatch.setattr(sodium, "verify", counting)
    made = seq.transact(lambda ctx: [record_entry(own, 2, tag="own"), record_entry(other, 3, tag="own")])
    assert [r.seq for r in made] == [before, before + 1]
    assert checked == [other.signing.verify_key.encode()]  # the own key's entry was not verified again
    check_ledger(ledger_url)
