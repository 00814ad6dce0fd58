"""Walk the fixed vectors in tests/vectors/*.json through the ledger's pure code.

Every case carries a ``desc`` and the expected verdict. The files are written by ``generate.py``
from an independent reference (see its docstring); this module only reads them.
"""

from __future__ import annotations

import ast
import base64
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ledger import canonical, envelope, note, tree
from ledger.errors import CanonicalError, EnvelopeError, NoteError, ProofError, SignatureError

HERE = Path(__file__).resolve().parent


@cache
def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / name).read_text("utf-8"))
    return data


def cases(name: str, key: str = "cases") -> list[Any]:
    return [pytest.param(c, id=f"{i:03d}-{c['desc'][:70]}") for i, c in enumerate(load(name)[key])]


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


# -- files ---------------------------------------------------------------------------------------


# The files generate.py writes and this module walks (other suites keep their own vectors here too).
OURS = ["tree_hashes.json", "inclusion.json", "consistency.json", "canonical.json", "notes.json", "envelopes.json"]


def test_every_generated_file_is_walked() -> None:
    from tests.vectors import generate

    assert sorted(generate.FILES) == sorted(OURS)
    assert all((HERE / name).exists() for name in OURS)


@pytest.mark.parametrize("name", OURS)
def test_every_case_has_a_desc_and_a_verdict(name: str) -> None:
    data = load(name)
    assert isinstance(data["desc"], str) and data["desc"]
    groups = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict) and "desc" in v[0]]
    assert groups, f"{name} holds no cases"
    for group in groups:
        for case in group:
            assert case["desc"]
            if name != "tree_hashes.json":
                assert case["expect"] in ("ok", "error", "bad_signature"), case["desc"]


def test_vector_sets_hold_both_verdicts() -> None:
    for name in ("inclusion.json", "consistency.json", "notes.json", "envelopes.json"):
        verdicts = {c["expect"] for c in load(name)["cases"]}
        assert {"ok", "error"} <= verdicts, name


def test_generator_reproduces_the_files_exactly() -> None:
    from tests.vectors import generate

    texts = generate.render()
    for name, text in texts.items():
        assert (HERE / name).read_text("utf-8") == text, f"{name} is stale: run python -m tests.vectors.generate"


def test_generator_does_not_import_the_code_under_test() -> None:
    source = (HERE / "generate.py").read_text("utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"ledger", "keys", "api", "audit"}, imported


# -- tree hashes -----------------------------------------------------------------------------------


def leaf_set(name: str) -> list[bytes]:
    data = load("tree_hashes.json")
    encoding = data["leaf_set_encoding"][name]
    items = data["leaf_sets"][name]
    return [bytes.fromhex(x) if encoding == "hex" else x.encode("utf-8") for x in items]


@pytest.mark.parametrize("case", cases("tree_hashes.json", "leaf_hashes"))
def test_leaf_hash(case: dict[str, Any]) -> None:
    assert tree.leaf_hash(h(case["leaf"])).hex() == case["hash"]
    if "not_equal_to_node" in case:
        other = case["not_equal_to_node"]
        assert tree.node_hash(h(other["left"]), h(other["right"])).hex() != case["hash"]


@pytest.mark.parametrize("case", cases("tree_hashes.json", "node_hashes"))
def test_node_hash(case: dict[str, Any]) -> None:
    assert tree.node_hash(h(case["left"]), h(case["right"])).hex() == case["hash"]


@pytest.mark.parametrize("case", cases("tree_hashes.json", "roots"))
def test_root(case: dict[str, Any]) -> None:
    leaves = leaf_set(case["leaf_set"])[: case["size"]]
    hashes = [tree.leaf_hash(x) for x in leaves]
    compact = tree.CompactRange()
    for x in hashes:
        compact.append(x)
    assert compact.root().hex() == case["root"]
    assert tree.root_from_leaves(hashes).hex() == case["root"]
    if case["size"] == 0:
        assert tree.EMPTY_ROOT.hex() == case["root"]


# -- proofs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("inclusion.json"))
def test_inclusion(case: dict[str, Any]) -> None:
    args = (case["index"], case["size"], h(case["leaf_hash"]), [h(x) for x in case["proof"]], h(case["root"]))
    if case["expect"] == "ok":
        tree.verify_inclusion(*args)
        assert tree.root_from_inclusion_proof(*args[:4]) == args[4]
    else:
        with pytest.raises(ProofError):
            tree.verify_inclusion(*args)


@pytest.mark.parametrize("case", cases("consistency.json"))
def test_consistency(case: dict[str, Any]) -> None:
    args = (
        case["first"],
        case["second"],
        h(case["first_root"]),
        h(case["second_root"]),
        [h(x) for x in case["proof"]],
    )
    if case["expect"] == "ok":
        tree.verify_consistency(*args)
    else:
        with pytest.raises(ProofError):
            tree.verify_consistency(*args)


def _stored_nodes(leaves: list[bytes]) -> dict[tree.Node, bytes]:
    compact = tree.CompactRange()
    stored: dict[tree.Node, bytes] = {}
    for x in leaves:
        stored.update(compact.append(tree.leaf_hash(x)))
    return stored


def test_planned_proofs_equal_the_vectors() -> None:
    """The ledger's planner, reading stored nodes, produces exactly the proofs in the happy vectors."""
    stored = {name: _stored_nodes(leaf_set(name)) for name in ("ct", "seq")}
    checked = 0
    for case in load("inclusion.json")["cases"]:
        if case["desc"].startswith(("ct leaves:", "seq leaves:")):
            nodes = stored[case["desc"].split()[0]]
            plan = tree.plan_inclusion(case["index"], case["size"])
            assert [x.hex() for x in plan.assemble(nodes)] == case["proof"], case["desc"]
            checked += 1
    for case in load("consistency.json")["cases"]:
        if case["desc"].startswith(("ct leaves:", "seq leaves:")):
            nodes = stored[case["desc"].split()[0]]
            plan = tree.plan_consistency(case["first"], case["second"])
            assert [x.hex() for x in plan.assemble(nodes)] == case["proof"], case["desc"]
            checked += 1
    assert checked > 100


# -- canonical JSON ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("canonical.json", "serialize"))
@pytest.mark.parametrize("encoder", ["fast", "reference"])
def test_canonical_serialize(case: dict[str, Any], encoder: str) -> None:
    value = json.loads(case["input"])  # lenient: floats, NaN and big integers parse
    fn = canonical.canonical_bytes if encoder == "fast" else canonical.canonical_bytes_reference
    if case["expect"] == "ok":
        assert fn(value) == case["canonical"].encode("utf-8")
    else:
        with pytest.raises(CanonicalError):
            fn(value)


def _parse_input(case: dict[str, Any]) -> bytes:
    return case["text"].encode("utf-8") if "text" in case else bytes.fromhex(case["hex"])


@pytest.mark.parametrize("case", cases("canonical.json", "parse"))
def test_canonical_parse(case: dict[str, Any]) -> None:
    data = _parse_input(case)
    if case["expect"] == "ok":
        value = canonical.parse_canonical(data)
        assert canonical.canonical_bytes(value) == data
    else:
        with pytest.raises(CanonicalError):
            canonical.parse_canonical(data)


# -- notes and checkpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("notes.json"))
def test_checkpoint_note(case: dict[str, Any]) -> None:
    key = note.VerifierKey.parse(case["vkey"])
    if case["expect"] == "ok":
        cp = note.verify_checkpoint(case["note"], key)
        want = case["checkpoint"]
        assert (cp.origin, cp.size, cp.root.hex()) == (want["origin"], want["size"], want["root"])
    else:
        with pytest.raises(NoteError):
            note.verify_checkpoint(case["note"], key)


@pytest.mark.parametrize("case", cases("notes.json", "vkeys"))
def test_verifier_key(case: dict[str, Any]) -> None:
    if case["expect"] == "ok":
        key = note.VerifierKey.parse(case["vkey"])
        assert (key.name, key.hash.hex(), key.public_key.hex()) == (case["name"], case["key_hash"], case["public_key"])
        assert key.encode() == case["vkey"]
    else:
        with pytest.raises(NoteError):
            note.VerifierKey.parse(case["vkey"])


def test_ledger_signs_the_vector_checkpoint_byte_for_byte() -> None:
    """The ledger's signer writes exactly the good vector note (Ed25519 is deterministic)."""
    import hashlib

    import nacl.signing

    data = load("notes.json")
    good = data["cases"][0]
    assert good["expect"] == "ok"
    key = nacl.signing.SigningKey(hashlib.sha256(b"shulian vector log key").digest())
    want = good["checkpoint"]
    text = note.Checkpoint(want["origin"], want["size"], h(want["root"])).text()
    assert note.sign_note(text, data["origin"], key) == good["note"]
    assert note.signer_vkey(data["origin"], key).encode() == data["log_vkey"]


# -- envelopes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("envelopes.json"))
def test_envelope(case: dict[str, Any]) -> None:
    leaf = _parse_input(case)
    public_key = base64.b64decode(load("envelopes.json")["public_key"])
    if case["expect"] == "error":
        with pytest.raises((EnvelopeError, CanonicalError)):
            envelope.parse_envelope(leaf)
        return
    env = envelope.parse_envelope(leaf)
    assert env.leaf == leaf
    if case["expect"] == "ok":
        env.verify_signature(public_key)
        assert env.actor == load("envelopes.json")["key_id"]
    else:
        with pytest.raises(SignatureError):
            env.verify_signature(public_key)
