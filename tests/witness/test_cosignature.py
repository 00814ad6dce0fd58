"""tlog-cosignature/v1 and the k-of-n policy, checked against the spec written out here independently."""

from __future__ import annotations

import base64
import hashlib

import nacl.signing
import pytest

from ledger.cosignature import (
    AddCheckpoint,
    AddCheckpointError,
    CosignatureError,
    QuorumError,
    add_signatures,
    cosign,
    get_quorum_result,
    parse_add_checkpoint,
    parse_witness_vkey,
    verify_cosignature,
    verify_quorum,
    witness_vkey,
)
from ledger.note import Checkpoint, sign_note, signer_vkey
from tests.support import fixed_key

TEXT = Checkpoint("test.example/log", 5, bytes(range(32))).text()
NOTE = sign_note(TEXT, "test.example/log", fixed_key("log"))


def spec_verify(note: str, vkey: str) -> int:
    """Verify a cosignature/v1 line of ``note`` from the C2SP spec alone; return its time."""
    name, hexhash, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    assert raw[0] == 0x04
    assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() == hexhash
    text, sigs = note.split("\n\n", 1)
    for line in sigs.splitlines():
        dash, who, sig_b64 = line.split(" ")
        sig = base64.b64decode(sig_b64)
        if dash == "\u2014" and who == name and sig[:4].hex() == hexhash:
            ts = int.from_bytes(sig[4:12], "big")
            msg = f"cosignature/v1\ntime {ts}\n{text}\n".encode()
            nacl.signing.VerifyKey(raw[1:]).verify(msg, sig[12:])
            return ts
    raise AssertionError("no cosignature by that key")


def test_cosignature_verifies_under_the_spec_and_tampering_fails() -> None:
    key = fixed_key("witness-1")
    vkey = witness_vkey("w1.example/witness", key)
    sig = cosign(TEXT, vkey.name, key, 1_700_000_000)
    note = add_signatures(NOTE, [sig])
    assert spec_verify(note, vkey.encode()) == 1_700_000_000
    assert verify_cosignature(TEXT, sig, parse_witness_vkey(vkey.encode())) == 1_700_000_000
    other = Checkpoint("test.example/log", 6, bytes(range(32))).text()
    with pytest.raises(CosignatureError):
        verify_cosignature(other, sig, vkey)
    with pytest.raises(CosignatureError):  # the time is signed too
        verify_cosignature(TEXT, type(sig)(sig.name, sig.key_hash, (1).to_bytes(8, "big") + sig.payload[8:]), vkey)
    with pytest.raises(CosignatureError):  # a log (0x01) key is not a witness key
        parse_witness_vkey(signer_vkey("test.example/log", fixed_key("log")).encode())


def test_quorum_fails_closed() -> None:
    keys = [fixed_key(f"witness-{i}") for i in range(3)]
    vkeys = [witness_vkey(f"w{i}.example", k) for i, k in enumerate(keys)]
    note = add_signatures(NOTE, [cosign(TEXT, vkeys[0].name, keys[0], 1), cosign(TEXT, vkeys[1].name, keys[1], 2)])
    assert verify_quorum(note, vkeys, 2)
    result = get_quorum_result(note, vkeys, 3)
    assert not result and result.message == "cosigned by 2/3 witnesses, need 3"
    with pytest.raises(QuorumError, match="cosigned by 0/3"):
        verify_quorum(NOTE, vkeys, 1)
    # a cosignature by the right name with the wrong key, or of another checkpoint, does not count
    forged = cosign(TEXT, vkeys[2].name, fixed_key("impostor"), 3)
    assert not get_quorum_result(add_signatures(NOTE, [forged]), vkeys[2:], 1)
    for bad_quorum in (0, 4):
        assert not get_quorum_result(note, vkeys, bad_quorum)
    assert not get_quorum_result(note, [vkeys[0], vkeys[0]], 1)
    assert not get_quorum_result("not a note", vkeys, 1)


def test_add_checkpoint_body_round_trip_and_refusals() -> None:
    req = AddCheckpoint(3, (bytes(32), bytes(range(32))), NOTE)
    assert parse_add_checkpoint(req.encode()) == req
    assert req.encode().startswith(b"old 3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    assert parse_add_checkpoint(b"old 0\n\n" + NOTE.encode()).proof == ()
    for bad in (b"old x\n\n", b"new 1\n\n", b"old 01\n\n", b"old 1\nnotbase64!\n\n", b"old 1\nAAAA\n\n", b"old 1\n"):
        with pytest.raises(AddCheckpointError):
            parse_add_checkpoint(bad + NOTE.encode())


def test_cosignature_module_is_pure() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, ledger.cosignature\n"
        "bad = [m for m in ('sqlalchemy', 'sqlite3', 'fastapi', 'starlette', 'httpx') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
