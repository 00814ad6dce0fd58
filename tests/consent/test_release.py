"""Sealed releases: the requester opens and verifies; another key, changed bytes or a changed payload fail."""

from __future__ import annotations

import base64
import hashlib

import nacl.public
import pytest

from consent.commitment import commit_record, disclose
from consent.errors import CommitmentMismatch, DisclosureError, ReleaseError
from consent.release import FORMAT, build_release, delivered_hash, open_release, seal, verify_release
from tests.consent.conftest import ALICE_VALUES, World


def _sealed(world: World) -> tuple[dict[str, object], bytes, nacl.public.PrivateKey]:
    assert world.mzj.x25519 is not None
    rc = world.alice_commit
    items = disclose(world.hukou, ALICE_VALUES, rc.salts, {"name": "full", "id_number": "masked"})
    payload = build_release(42, world.alice_seq, "gaj.hukou", "h-0001", world.alice.subject or "", rc.root, items)
    return payload, seal(payload, bytes(world.mzj.x25519.public_key)), world.mzj.x25519


def test_seal_open_verify_round_trip(world: World) -> None:
    payload, sealed, key = _sealed(world)
    opened = open_release(sealed, key)
    assert opened == payload and opened["format"] == FORMAT
    assert open_release(sealed, bytes(key)) == payload
    on_ledger = world.state.commit(opened["record_seq"])  # the requester reads the commitment from the ledger
    assert on_ledger is not None
    values = verify_release(opened, on_ledger.commitment, dataset=world.hukou)
    assert values == {"name": "张三", "id_number": "330***********1234"}
    assert delivered_hash(sealed) == base64.b64encode(hashlib.sha256(sealed).digest()).decode()


def test_sealing_is_randomised(world: World) -> None:
    payload, sealed, key = _sealed(world)
    again = seal(payload, bytes(key.public_key))
    assert again != sealed and delivered_hash(again) != delivered_hash(sealed)


def test_wrong_key_or_changed_bytes_fail(world: World) -> None:
    _, sealed, _ = _sealed(world)
    assert world.rsj.x25519 is not None
    with pytest.raises(ReleaseError):
        open_release(sealed, world.rsj.x25519)
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(ReleaseError):
        open_release(bytes(flipped), world.mzj.x25519 or b"")
    with pytest.raises(ReleaseError):
        open_release(sealed[:20], world.mzj.x25519 or b"")
    with pytest.raises(ReleaseError):
        open_release(sealed, b"short")
    with pytest.raises(ReleaseError):
        seal({"format": FORMAT}, b"short")


def test_sealed_garbage_is_refused(world: World) -> None:
    key = world.mzj.x25519
    assert key is not None
    box = nacl.public.SealedBox(key.public_key)
    with pytest.raises(ReleaseError):
        open_release(bytes(box.encrypt(b'{"b":1, "a":2}')), key)  # not canonical
    with pytest.raises(ReleaseError):
        open_release(bytes(box.encrypt(b"[1]")), key)


def test_verify_release_against_another_commitment_fails(world: World) -> None:
    _payload, sealed, key = _sealed(world)
    opened = open_release(sealed, key)
    other = commit_record(world.hukou, ALICE_VALUES).root
    with pytest.raises(CommitmentMismatch):
        verify_release(opened, other)
    with pytest.raises(ReleaseError):  # the payload names another commitment than the ledger's
        verify_release({**opened, "commitment": base64.b64encode(other).decode()}, world.alice_commit.root)
    with pytest.raises(ReleaseError):
        verify_release({**opened, "format": "shulian-release/2"}, world.alice_commit.root)
    with pytest.raises(ReleaseError):
        verify_release({**opened, "extra": 1}, world.alice_commit.root)
    leaves = list(opened["leaves"])
    leaves[0] = {**leaves[0], "value": "李四"}
    with pytest.raises(DisclosureError):
        verify_release({**opened, "leaves": leaves}, world.alice_commit.root)


def test_a_seal_key_made_ahead_is_used_once_and_only_for_its_key(world: World) -> None:
    from ledger import sodium

    payload, _, key = _sealed(world)
    public = bytes(key.public_key)
    ahead = sodium.SealKey(public)
    sealed = seal(payload, public, ahead=ahead)
    assert ahead.used and sealed[:32] == ahead.ephemeral
    assert open_release(sealed, key) == payload
    again = seal(payload, public, ahead=ahead)  # used: sealed afresh, with another ephemeral key
    assert again[:32] != ahead.ephemeral and open_release(again, key) == payload
    assert world.rsj.x25519 is not None
    elsewhere = sodium.SealKey(bytes(world.rsj.x25519.public_key))
    mine = seal(payload, public, ahead=elsewhere)  # made for another key: not used
    assert not elsewhere.used and open_release(mine, key) == payload
