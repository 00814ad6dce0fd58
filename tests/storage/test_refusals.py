"""Entries the ledger must refuse, on both engines: and when it refuses, nothing is written."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from api.node import Node
from keys.keystore import StoredKey
from ledger.envelope import sign_envelope
from ledger.errors import CanonicalError, DuplicateEntryError, EnvelopeError, KeyError_, LedgerError, SignatureError
from ledger.sequencer import Receipt, Sequencer
from ledger.timefmt import now
from tests.support import check_ledger, counts, dataset_body, record_entry, register, stored_key, ts_at


@pytest.fixture
def dept(node: Node) -> StoredKey:
    return register(node, "dept", "department")


def refused(node: Node, leaf: bytes, error: type[LedgerError], ledger_url: str, match: str | None = None) -> None:
    before = counts(node.store)
    with pytest.raises(error, match=match):
        node.append(leaf)
    assert counts(node.store) == before, "a refused append wrote something"
    check_ledger(ledger_url)


def flip_signature(leaf: bytes) -> bytes:
    value = json.loads(leaf)
    sig = bytearray(base64.b64decode(value["sig"]))
    sig[17] ^= 0x04
    value["sig"] = base64.b64encode(bytes(sig)).decode()
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def test_duplicate_is_refused(node: Node, dept: StoredKey, ledger_url: str) -> None:
    leaf = record_entry(dept, 1)
    first = node.append(leaf)
    refused(node, leaf, DuplicateEntryError, ledger_url, match=f"seq {first.seq}")


def test_duplicate_is_refused_by_a_other(node: Node, dept: StoredKey, other: Node, ledger_url: str) -> None:
    leaf = record_entry(dept, 1)
    node.append(leaf)
    refused(other, leaf, DuplicateEntryError, ledger_url)


def test_duplicate_within_one_batch(node: Node, dept: StoredKey, ledger_url: str) -> None:
    leaf = record_entry(dept, 1)
    before = counts(node.store)
    results = node.sequencer.append_many([leaf, leaf])
    assert isinstance(results[0], Receipt)
    assert isinstance(results[1], DuplicateEntryError)
    assert counts(node.store).entries == before.entries + 1
    check_ledger(ledger_url)


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_bad_signature_is_refused(node: Node, dept: StoredKey, other: Node, ledger_url: str, warm: bool) -> None:
    leaf = flip_signature(record_entry(dept, 1))
    refused(node if warm else other, leaf, SignatureError, ledger_url)


def test_unknown_key_is_refused(node: Node, ledger_url: str) -> None:
    stranger = stored_key("stranger", "department")
    refused(node, record_entry(stranger, 1), KeyError_, ledger_url, match="not registered")


def test_revoked_key_is_refused(node: Node, dept: StoredKey, ledger_url: str) -> None:
    signed_before = record_entry(dept, 1)
    admin = node.local_key("admin")
    node.append(sign_envelope(admin.signing, "identity.revoke", {"key_id": dept.key_id}, ts=ts_at(1)))
    refused(node, record_entry(dept, 2, ts=ts_at(2)), KeyError_, ledger_url, match="revoked")
    # signed before the revocation but arriving after it: refused, whatever time it claims
    refused(node, signed_before, KeyError_, ledger_url, match="revoked at seq")
    check_ledger(ledger_url)


def test_rotated_key_keeps_old_signatures(node: Node, dept: StoredKey, other: Node, ledger_url: str) -> None:
    signed_before = record_entry(dept, 1)
    new = stored_key("dept-rotated", "department")
    rotation = {
        "key_id": new.key_id,
        "replaces": dept.key_id,
        "ed25519": new.public_b64,
        "x25519": new.x25519_b64,
        "name": "dept, new key",
    }
    # The rotation takes effect a minute ahead (within the allowed skew), so "not yet valid" below
    # holds however slowly a loaded machine gets there.
    node.append(sign_envelope(dept.signing, "identity.rotate", rotation, ts=ts_at(60)))
    refused(other, record_entry(dept, 2, ts=ts_at(61)), KeyError_, ledger_url, match="rotated")
    refused(other, record_entry(new, 3), KeyError_, ledger_url, match="not yet valid")
    refused(other, signed_before, KeyError_, ledger_url, match="rotated at seq")
    other.append(sign_envelope(new.signing, "dataset.register", dataset_body(dept.key_id, 4), ts=ts_at(61)))
    check_ledger(ledger_url)


@pytest.mark.parametrize("offset", [-301, 301, -3600, 86400])
def test_entry_time_far_from_ledger_time_is_refused(node: Node, dept: StoredKey, ledger_url: str, offset: int) -> None:
    refused(node, record_entry(dept, 1, ts=ts_at(offset)), EnvelopeError, ledger_url, match="5 minutes")


def test_entry_time_within_five_minutes_is_accepted(node: Node, dept: StoredKey, ledger_url: str) -> None:
    node.append(record_entry(dept, 1, ts=ts_at(290)))  # ahead of the ledger's clock
    # behind the ledger's clock: a sequencer whose clock runs 290 s ahead of the entry's signer
    ahead = Sequencer(
        node.store, node.local_key("log").signing, node.reader.origin, clock=lambda: now() + timedelta(seconds=290)
    )
    ahead.append(record_entry(dept, 2))
    late = Sequencer(
        node.store, node.local_key("log").signing, node.reader.origin, clock=lambda: now() + timedelta(seconds=310)
    )
    before = counts(node.store)
    with pytest.raises(EnvelopeError, match="5 minutes"):
        late.append(record_entry(dept, 3))
    assert counts(node.store) == before
    check_ledger(ledger_url)


def test_role_that_may_not_sign_the_type_is_refused(node: Node, ledger_url: str) -> None:
    citizen = register(node, "citizen", "citizen")
    refused(node, record_entry(citizen, 1), KeyError_, ledger_url, match="may not sign")


def test_only_an_admin_registers_on_the_ledger(node: Node, dept: StoredKey, ledger_url: str) -> None:
    other = stored_key("other", "department")
    body = {
        "key_id": other.key_id,
        "role": "department",
        "name": "x",
        "ed25519": other.public_b64,
        "x25519": other.x25519_b64,
    }
    refused(node, sign_envelope(dept.signing, "identity.register", body), KeyError_, ledger_url, match="only an admin")


def test_malformed_leaves_are_refused(node: Node, dept: StoredKey, ledger_url: str) -> None:
    leaf = record_entry(dept, 1)
    refused(node, leaf + b" ", CanonicalError, ledger_url)
    refused(node, json.dumps(json.loads(leaf), indent=1).encode(), CanonicalError, ledger_url)
    value = json.loads(leaf) | {"v": 2}
    refused(
        node,
        json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(),
        EnvelopeError,
        ledger_url,
    )


def test_a_mixed_batch_commits_the_good_ones_together(node: Node, dept: StoredKey, ledger_url: str) -> None:
    before = counts(node.store)
    stranger = stored_key("stranger", "department")
    leaves = [
        record_entry(dept, 1),
        flip_signature(record_entry(dept, 2)),
        record_entry(dept, 3),
        record_entry(stranger, 4),
        record_entry(dept, 5, ts=ts_at(-600)),
        record_entry(dept, 6),
        b"not json",
    ]
    results = node.sequencer.append_many(leaves)
    kinds = [type(r).__name__ for r in results]
    assert kinds == [
        "Receipt",
        "SignatureError",
        "Receipt",
        "KeyError_",
        "EnvelopeError",
        "Receipt",
        "CanonicalError",
    ]
    receipts = [r for r in results if isinstance(r, Receipt)]
    assert [r.seq for r in receipts] == [before.entries, before.entries + 1, before.entries + 2]
    assert len({r.height for r in receipts}) == 1
    after = counts(node.store)
    assert (after.entries, after.blocks) == (before.entries + 3, before.blocks + 1)
    check_ledger(ledger_url)


def test_a_batch_of_only_refusals_seals_no_block(node: Node, dept: StoredKey, ledger_url: str) -> None:
    before = counts(node.store)
    results = node.sequencer.append_many([flip_signature(record_entry(dept, 1)), record_entry(dept, 2, ts=ts_at(900))])
    assert all(isinstance(r, LedgerError) for r in results)
    assert counts(node.store) == before
    check_ledger(ledger_url)
