"""The log's witness table on both engines, and the witness's decisions in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.node import Node
from api.witnesses import _store, add_witness, list_witnesses, with_cosignatures
from audit.witness import Witness, WitnessRefusal
from keys.keystore import StoredKey
from ledger.cosignature import AddCheckpoint, parse_signature_lines, verify_cosignature, witness_vkey
from ledger.note import parse_checkpoint_text, parse_note
from tests.support import fixed_key, register


def make_witness(tmp_path: Path, node: Node) -> Witness:
    key = StoredKey.generate("audit.example/w1", role="witness")
    key.signing = fixed_key("state-witness")
    return Witness(key, [node.reader.vkey], tmp_path / "w" / "witness.db")


def test_witness_table_and_served_cosignatures(node: Node, tmp_path: Path) -> None:
    witness = make_witness(tmp_path, node)
    vkey = witness.vkey.encode()
    assert add_witness(node.store, vkey, "http://127.0.0.1:1") is True
    assert add_witness(node.store, vkey, "http://127.0.0.1:2") is False
    assert [(w.vkey, w.url, w.last_size) for w in list_witnesses(node.store)] == [(vkey, "http://127.0.0.1:2", 0)]
    size, note = node.reader.checkpoint()
    line = witness.add_checkpoint(AddCheckpoint(0, (), note).encode())
    root = parse_checkpoint_text(parse_note(note).text).root
    _store(node.store, vkey, size, root, line)
    served = with_cosignatures(node.store, size, note)
    assert served == note + line
    verify_cosignature(
        parse_note(served).text, parse_signature_lines(line)[0], witness_vkey("audit.example/w1", witness.key.signing)
    )
    assert with_cosignatures(node.store, size + 1, note) == note  # only on the checkpoint it cosigned


def test_witness_decisions_in_process(node: Node, tmp_path: Path) -> None:
    witness = make_witness(tmp_path, node)
    size, note = node.reader.checkpoint()
    witness.add_checkpoint(AddCheckpoint(0, (), note).encode())
    with pytest.raises(WitnessRefusal) as refused:
        witness.add_checkpoint(AddCheckpoint(0, (), note).encode())
    assert (refused.value.status, refused.value.size) == (409, size)
    witness.add_checkpoint(AddCheckpoint(size, (), note).encode())  # the same checkpoint again: cosigned again
    register(node, "state-citizen", "citizen")
    new_size, new_note = node.reader.checkpoint()
    with pytest.raises(WitnessRefusal) as bad_proof:
        witness.add_checkpoint(AddCheckpoint(size, (bytes(32),), new_note).encode())
    assert bad_proof.value.status == 422
    proof = tuple(node.reader.consistency(size, new_size))
    witness.add_checkpoint(AddCheckpoint(size, proof, new_note).encode())
    assert witness.latest(node.reader.origin) == (new_size, parse_checkpoint_text(parse_note(new_note).text).root)
