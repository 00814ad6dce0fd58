"""Entries served with the witnessed checkpoint (``api.witnesses.witnessed_entries``), on both engines.

Usage and objection views prove each entry against the checkpoint most witnesses cosigned, carrying its
cosignatures, so a client's k-of-n policy can be met even while the newest checkpoint waits for them;
an entry newer than that checkpoint keeps its proof against the latest one.
"""

from __future__ import annotations

import base64
from pathlib import Path

from api.node import Node
from api.schemas import EntryOut
from api.services import proven_entries
from api.witnesses import _store, add_witness, witnessed_entries
from audit.witness import Witness
from keys.keystore import StoredKey
from ledger.cosignature import AddCheckpoint, get_quorum_result
from ledger.note import parse_checkpoint_text, parse_note, verify_checkpoint
from ledger.tree import leaf_hash, verify_inclusion
from tests.support import fixed_key, register


def make_witness(tmp_path: Path, node: Node, name: str) -> Witness:
    key = StoredKey.generate(name, role="witness")
    key.signing = fixed_key(name)
    return Witness(key, [node.reader.vkey], tmp_path / name.replace("/", "_") / "witness.db")


def cosign_latest(node: Node, witness: Witness, old: int) -> int:
    """Have ``witness`` cosign the node's latest checkpoint (from its ``old`` size) and store the line."""
    size, note = node.reader.checkpoint()
    proof = tuple(node.reader.consistency(old, size)) if 0 < old < size else ()
    line = witness.add_checkpoint(AddCheckpoint(old, proof, note).encode())
    _store(node.store, witness.vkey.encode(), size, parse_checkpoint_text(parse_note(note).text).root, line)
    return size


def check(node: Node, e: EntryOut, size: int) -> str:
    """The entry's proof holds against its checkpoint, of ``size``, signed by the log; its note."""
    cp = verify_checkpoint(e.checkpoint, node.reader.vkey)
    assert cp.size == size == e.proof.tree_size
    hashes = [base64.b64decode(h) for h in e.proof.hashes]
    verify_inclusion(e.seq, cp.size, leaf_hash(base64.b64decode(e.leaf)), hashes, cp.root)
    return e.checkpoint


def test_entries_carry_the_witnessed_checkpoint(node: Node, tmp_path: Path) -> None:
    w1, w2 = (make_witness(tmp_path, node, f"audit.example/w{i}") for i in (1, 2))
    keys = [w1.vkey, w2.vkey]
    for w in (w1, w2):
        add_witness(node.store, w.vkey.encode(), "http://127.0.0.1:1")
    for i in range(3):
        register(node, f"we-{i}", "citizen")
    s1 = cosign_latest(node, w1, 0)
    assert cosign_latest(node, w2, 0) == s1
    for i in range(3, 6):
        register(node, f"we-{i}", "citizen")
    s2, _ = node.reader.checkpoint()
    assert s2 > s1

    # both witnesses cosigned s1, none s2: older entries are proved against s1, with both cosignatures
    served = witnessed_entries(node.reader, node.store, proven_entries(node, [1, s1 - 1, s2 - 1]))
    assert [e.seq for e in served] == [1, s1 - 1, s2 - 1]
    for e in served[:2]:
        note = check(node, e, s1)
        assert get_quorum_result(note, keys, 2)
    newest = check(node, served[2], s2)
    assert not get_quorum_result(newest, keys, 1)  # fails closed: not witnessed yet

    # w1 moves on to s2: one cosignature each, the tie goes to the newest checkpoint
    cosign_latest(node, w1, s1)
    served = witnessed_entries(node.reader, node.store, proven_entries(node, [1, s2 - 1]))
    for e in served:
        note = check(node, e, s2)
        assert get_quorum_result(note, keys, 1) and not get_quorum_result(note, keys, 2)

    # no witness at all: the entries are left as they were
    plain = proven_entries(node, [1])
    assert witnessed_entries(node.reader, node.store, []) == []
    assert witnessed_entries(node.reader, node.store, plain)[0].proof == plain[0].proof
