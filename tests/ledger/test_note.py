"""Signed notes and checkpoints: the ledger's signer against an independent C2SP reading, and parse errors."""

from __future__ import annotations

import base64
import hashlib

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import NoteError
from ledger.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Checkpoint,
    VerifierKey,
    key_hash,
    parse_checkpoint_text,
    parse_note,
    sign_note,
    signer_vkey,
    verify_checkpoint,
    verify_note,
)
from tests.support import fixed_key

ORIGIN = "test.shulian.example/log"
LOG = fixed_key("note log")
ROOT = hashlib.sha256(b"a root").digest()


def checkpoint_note(size: int = 10, root: bytes = ROOT, origin: str = ORIGIN) -> str:
    return sign_note(Checkpoint(origin, size, root).text(), ORIGIN, LOG)


def test_note_layout_follows_c2sp() -> None:
    note = checkpoint_note()
    text, sigs = note.split("\n\n")
    assert text == f"{ORIGIN}\n10\n{base64.b64encode(ROOT).decode()}"
    dash, name, b64 = sigs.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", ORIGIN)
    raw = base64.b64decode(b64)
    pub = bytes(LOG.verify_key)
    assert raw[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pub).digest()[:4]
    LOG.verify_key.verify((text + "\n").encode(), raw[4:])


def test_verifier_key_round_trip() -> None:
    vkey = signer_vkey(ORIGIN, LOG)
    text = vkey.encode()
    name, hexhash, b64 = text.split("+", 2)
    assert name == ORIGIN and hexhash == vkey.hash.hex()
    assert base64.b64decode(b64) == bytes([ALG_ED25519]) + bytes(LOG.verify_key)
    assert VerifierKey.parse(text) == vkey
    assert VerifierKey.parse(text + "\n") == vkey


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_every_key_round_trips_even_with_plus_in_its_base64(seed: bytes) -> None:
    key = nacl.signing.SigningKey(seed)
    vkey = signer_vkey(ORIGIN, key)
    assert VerifierKey.parse(vkey.encode()) == vkey
    cp = verify_checkpoint(sign_note(Checkpoint(ORIGIN, 1, ROOT).text(), ORIGIN, key), vkey)
    assert (cp.size, cp.root) == (1, ROOT)


def test_verify_checkpoint() -> None:
    cp = verify_checkpoint(checkpoint_note(12345), signer_vkey(ORIGIN, LOG))
    assert cp == Checkpoint(ORIGIN, 12345, ROOT)
    assert parse_checkpoint_text(cp.text()) == cp


def test_cosignature_lines_are_kept() -> None:
    note = checkpoint_note()
    witness = fixed_key("witness")
    wname = "witness.example"
    khash = key_hash(wname, ALG_COSIGNATURE_V1, bytes(witness.verify_key))
    line = f"\u2014 {wname} {base64.b64encode(khash + bytes(8) + bytes(64)).decode()}\n"
    parsed = verify_note(note + line, signer_vkey(ORIGIN, LOG))
    assert [s.name for s in parsed.signatures] == [ORIGIN, wname]
    assert parsed.signatures[1].key_hash == khash
    assert parsed.encode() == note + line


def test_signature_by_an_unknown_key_is_skipped_not_trusted() -> None:
    text = Checkpoint(ORIGIN, 3, ROOT).text()
    other = sign_note(text, "other.example", fixed_key("other"))
    both = other + checkpoint_note(3).split("\n\n")[1]
    assert verify_checkpoint(both, signer_vkey(ORIGIN, LOG)).size == 3
    with pytest.raises(NoteError, match="no signature"):
        verify_checkpoint(other, signer_vkey(ORIGIN, LOG))


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda n: n.replace("\n10\n", "\n11\n"), id="size changed"),
        pytest.param(lambda n: n.replace("\n\n", "\n"), id="no blank line"),
        pytest.param(lambda n: n[:-1], id="no final newline"),
        pytest.param(lambda n: n + "\n", id="trailing blank line"),
        pytest.param(lambda n: n + "junk\n", id="trailing junk line"),
        pytest.param(lambda n: n.split("\n\n")[0] + "\n\n", id="no signatures"),
        pytest.param(lambda n: n.replace("\u2014", "--"), id="ascii dash"),
        pytest.param(lambda n: n.replace(f" {ORIGIN} ", f" {ORIGIN}  "), id="double space"),
        pytest.param(lambda n: n.replace(f"\u2014 {ORIGIN}", "\u2014 other"), id="other name"),
        pytest.param(lambda n: n[:-6] + "!!!!=\n", id="bad base64"),
        pytest.param(lambda n: n.split("\n\n")[0] + "\n\n\u2014 " + ORIGIN + " AAAA\n", id="short signature"),
        pytest.param(lambda n: "x" * 1_000_001, id="huge"),
    ],
)
def test_broken_notes_are_refused(mutate: object) -> None:
    assert callable(mutate)
    with pytest.raises(NoteError):
        verify_checkpoint(mutate(checkpoint_note()), signer_vkey(ORIGIN, LOG))


def test_flipping_any_signature_bit_fails() -> None:
    note = checkpoint_note()
    text, sig_line = note.split("\n\n")
    prefix, b64 = sig_line.rstrip("\n").rsplit(" ", 1)
    raw = base64.b64decode(b64)
    for bit in range(0, len(raw) * 8, 7):
        bad = bytearray(raw)
        bad[bit // 8] ^= 1 << (bit % 8)
        broken = f"{text}\n\n{prefix} {base64.b64encode(bytes(bad)).decode()}\n"
        with pytest.raises(NoteError):
            verify_checkpoint(broken, signer_vkey(ORIGIN, LOG))


def test_origin_must_be_the_key_name() -> None:
    note = sign_note(Checkpoint("elsewhere.example/log", 10, ROOT).text(), ORIGIN, LOG)
    verify_note(note, signer_vkey(ORIGIN, LOG))  # a valid note ...
    with pytest.raises(NoteError, match="origin"):
        verify_checkpoint(note, signer_vkey(ORIGIN, LOG))  # ... but not this log's checkpoint


@pytest.mark.parametrize("size", ["٨", "⁸", "８", "+8", "-8", "8 ", "0x8", "08", ""])
def test_checkpoint_size_must_be_ascii_decimal(size: str) -> None:
    text = f"{ORIGIN}\n{size}\n{base64.b64encode(ROOT).decode()}\n"
    with pytest.raises(NoteError):
        parse_checkpoint_text(text)
    with pytest.raises(NoteError):
        verify_checkpoint(sign_note(text, ORIGIN, LOG), signer_vkey(ORIGIN, LOG))


def test_extension_lines_are_refused() -> None:
    note = sign_note(Checkpoint(ORIGIN, 10, ROOT).text() + "ext\n", ORIGIN, LOG)
    verify_note(note, signer_vkey(ORIGIN, LOG))
    with pytest.raises(NoteError):
        verify_checkpoint(note, signer_vkey(ORIGIN, LOG))


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\there"])
def test_bad_key_names_are_refused(name: str) -> None:
    with pytest.raises(NoteError):
        signer_vkey(name, LOG)


@pytest.mark.parametrize("text", ["no newline", "blank\n\nline\n", ""])
def test_sign_note_refuses_bad_text(text: str) -> None:
    with pytest.raises(NoteError):
        sign_note(text, ORIGIN, LOG)


def test_parse_note_splits_text_and_signatures() -> None:
    note = checkpoint_note()
    parsed = parse_note(note)
    assert parsed.text == Checkpoint(ORIGIN, 10, ROOT).text()
    assert len(parsed.signatures) == 1 and len(parsed.signatures[0].payload) == 64
    assert parsed.encode() == note


def test_cosignature_key_cannot_verify_a_note() -> None:
    pub = bytes(LOG.verify_key)
    cosig_key = VerifierKey(ORIGIN, ALG_COSIGNATURE_V1, pub)
    with pytest.raises(NoteError):
        verify_note(checkpoint_note(), cosig_key)
