"""The pure verifier on in-memory ledgers: every check reached on its own, with its exact fault line."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from audit.errors import BlockSourceError, EntrySourceError, SetupError, VerificationError
from audit.verifier import (
    CheckedEnvelope,
    LedgerVerifier,
    RawBlock,
    RawEntry,
    check_entry,
    checked_envelope,
    signed_bytes,
    verify_ledger,
)
from consent.errors import InvalidBody
from consent.state import ConsentState
from keys.registry import KeyRecord, KeyRegistry
from ledger.envelope import Envelope, parse_envelope, sign_envelope
from ledger.note import Checkpoint, sign_note
from ledger.timefmt import parse_ts
from tests.audit.chain import ORIGIN, Chain, key, register_body, standard_chain


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def with_leaf(entries: list[RawEntry], seq: int, leaf: bytes) -> list[RawEntry]:
    return [(s, leaf if s == seq else old) for s, old in entries]


def flip_in_body(leaf: bytes) -> bytes:
    """Change one character inside a body string, keeping the JSON canonical."""
    at = leaf.index(b'"record":"r') + len(b'"record":"r')
    return leaf[:at] + b"X" + leaf[at + 1 :]


# -- a good ledger ------------------------------------------------------------------------------


def test_good_ledger_verifies() -> None:
    chain = standard_chain()
    result = chain.verify()
    assert result.ok and bool(result)
    assert (result.entries, result.blocks) == (10, 3)
    assert result.root == chain.root(10)
    assert result.message == f"ok: 10 entries in 3 blocks, root {b64(chain.root(10))}"
    result.raise_for_fault()


def test_progress_counts_every_entry() -> None:
    chain = standard_chain()
    seen: list[int] = []
    LedgerVerifier(chain.vkey, ORIGIN).verify(chain.entries(), chain.blocks, seen.append)
    assert sum(seen) == 10


def test_progress_on_a_fault_counts_the_entries_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("audit.verifier.PROGRESS_STEP", 3)
    chain = standard_chain()
    seen: list[int] = []
    entries = with_leaf(chain.entries(), 8, flip_in_body(chain.leaves[8]))
    LedgerVerifier(chain.vkey, ORIGIN).verify(entries, chain.blocks, seen.append)
    assert sum(seen) == 8 and len(seen) > 1


def test_fault_result_raises() -> None:
    chain = standard_chain()
    result = chain.verify(entries=chain.entries()[:-1])
    assert not result
    with pytest.raises(VerificationError, match=r"^seq 9: missing"):
        result.raise_for_fault()


# -- entries ------------------------------------------------------------------------------------


def test_changed_leaf_byte_breaks_the_signature() -> None:
    chain = standard_chain()
    result = chain.verify(entries=with_leaf(chain.entries(), 4, flip_in_body(chain.leaves[4])))
    assert result.message == "seq 4: signature does not verify"
    assert (result.seq, result.height, result.entries, result.blocks) == (4, None, 4, 1)


def test_non_canonical_leaf() -> None:
    chain = standard_chain()
    leaf = chain.leaves[4].replace(b'"body":{', b'"body": {', 1)
    assert chain.verify(entries=with_leaf(chain.entries(), 4, leaf)).message == "seq 4: not in RFC 8785 canonical form"


def test_leaf_that_is_not_json() -> None:
    chain = standard_chain()
    result = chain.verify(entries=with_leaf(chain.entries(), 3, chain.leaves[3][:-1]))
    assert result.message.startswith("seq 3: not JSON")


def test_signature_by_another_key() -> None:
    chain = standard_chain()
    forged = parse_envelope(sign_envelope(key("mallory").signing, "record.commit", {"record": "r4"}, ts=chain.ts()))
    value = json.loads(chain.leaves[4])
    value["sig"] = b64(forged.sig)
    leaf = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    assert chain.verify(entries=with_leaf(chain.entries(), 4, leaf)).message == "seq 4: signature does not verify"


def test_missing_entry() -> None:
    chain = standard_chain()
    entries = [e for e in chain.entries() if e[0] != 4]
    assert chain.verify(entries=entries).message == "seq 4: missing or out of order (found seq 5 in its place)"


def test_reordered_entries() -> None:
    chain = standard_chain()
    entries = chain.entries()
    entries[4], entries[5] = entries[5], entries[4]
    assert chain.verify(entries=entries).message == "seq 4: missing or out of order (found seq 5 in its place)"


def test_repeated_seq() -> None:
    chain = standard_chain()
    entries = chain.entries()
    entries.insert(5, entries[4])
    assert chain.verify(entries=entries).message == "seq 5: missing or out of order (found seq 4 in its place)"


def test_duplicate_leaf() -> None:
    chain = Chain()
    chain.seal()
    leaf = chain.record(2)
    chain.add(leaf)
    chain.add(leaf)
    chain.seal()
    result = chain.verify()
    assert result.message.startswith("seq 3: duplicate: the same leaf (hash ")


def test_entry_time_outside_the_block_window() -> None:
    chain = Chain()
    chain.seal()
    chain.add(chain.record(2, ts=chain.ts(-301)))
    chain.seal()
    block_time = chain.headers[1].time
    assert chain.verify().message == (
        f"seq 2: ts {chain.ts(-302)} is more than 300 s from the time {block_time} of block 1, which seals it"
    )


def test_entry_time_at_the_window_edge_fits() -> None:
    chain = Chain()
    chain.seal()
    chain.tick(400)
    chain.add(chain.record(2, ts=chain.ts(-300)))
    chain.add(chain.record(3, ts=chain.ts(300)))
    chain.seal()
    assert chain.verify().ok


def test_unregistered_signer() -> None:
    chain = Chain()
    chain.seal()
    stranger = key("stranger")
    chain.add(chain.record(2, signer=stranger))
    chain.seal()
    assert chain.verify().message == f"seq 2: key {stranger.key_id} is not registered"


def test_role_not_allowed() -> None:
    chain = Chain()
    citizen = key("citizen", "citizen")
    chain.add(sign_envelope(chain.admin.signing, "identity.register", register_body(citizen, "citizen"), ts=chain.ts()))
    chain.add(chain.record(3, signer=citizen))
    chain.seal()
    assert chain.verify().message == "seq 3: a citizen key may not sign record.commit"


def test_revoked_key() -> None:
    chain = Chain()
    chain.add(sign_envelope(chain.admin.signing, "identity.revoke", {"key_id": chain.dept.key_id}, ts=chain.ts()))
    chain.add(chain.record(3, ts=chain.ts(1)))
    chain.seal()
    assert chain.verify().message == f"seq 3: key {chain.dept.key_id} was revoked at seq 2"


def test_rotation_keeps_old_signatures_and_admits_the_new_key() -> None:
    chain = Chain()
    chain.records(2)
    new = key("dept2")
    body = {**register_body(new, "department"), "replaces": chain.dept.key_id}
    chain.add(sign_envelope(chain.dept.signing, "identity.rotate", body, ts=chain.ts(1)))
    chain.add(chain.record(5, signer=new, ts=chain.ts(2)))
    chain.seal(time=chain.ts(2))
    assert chain.verify().ok


def test_state_machines_are_replayed() -> None:
    chain = standard_chain()
    calls: list[tuple[str, int]] = []

    class Refuse:
        def check(self, seq: int, env: Envelope, signer: KeyRecord | None, registry: KeyRegistry) -> None:
            calls.append(("check", seq))
            if seq == 6:
                raise InvalidBody("record r6 is not allowed here")

        def apply(self, seq: int, env: Envelope, signer: KeyRecord | None, registry: KeyRegistry) -> None:
            calls.append(("apply", seq))

    result = verify_ledger(chain.vkey, ORIGIN, chain.entries(), chain.blocks, machines=[Refuse()])
    assert result.message == "seq 6: record r6 is not allowed here"
    assert calls[:4] == [("check", 0), ("apply", 0), ("check", 1), ("apply", 1)]
    assert calls[-1] == ("check", 6)


def test_consent_rules_are_replayed() -> None:
    chain = standard_chain()  # its records name no registered dataset
    assert chain.verify().ok
    result = verify_ledger(chain.vkey, ORIGIN, chain.entries(), chain.blocks, machines=[ConsentState()])
    assert result.message.startswith("seq 2: record.commit ")


def test_genesis_must_be_an_admin() -> None:
    chain = Chain()
    citizen = key("citizen", "citizen")
    chain.leaves[0] = sign_envelope(
        citizen.signing, "identity.register", register_body(citizen, "citizen"), ts=chain.ts()
    )
    chain.seal()
    assert chain.verify().message == "seq 0: seq 0 must be the genesis: identity.register of an admin"


def test_unsealed_entries() -> None:
    chain = standard_chain()
    chain.records(2)
    assert chain.verify().message == "seq 10: not sealed by any block (the last block ends at tree size 10)"


def test_no_blocks() -> None:
    chain = Chain()
    assert chain.verify().message == "seq 0: not sealed by any block (there are no blocks)"


def test_no_entries() -> None:
    chain = Chain()
    assert chain.verify(entries=[], blocks=[]).message == (
        "seq 0: missing: the ledger has no entries (seq 0 must be the genesis)"
    )


def test_entries_end_inside_a_block() -> None:
    chain = standard_chain()
    assert chain.verify(entries=chain.entries()[:8]).message == (
        "seq 8: missing: the entries end before block 2 seals seq 9"
    )


def test_source_errors_name_the_position() -> None:
    chain = standard_chain()

    def entries() -> Iterator[RawEntry]:
        yield from chain.entries()[:6]
        raise EntrySourceError("export line 8 is not JSON")

    def blocks() -> Iterator[RawBlock]:
        yield from chain.blocks[:2]
        raise BlockSourceError("export line 14 is not a block line")

    verifier = LedgerVerifier(chain.vkey, ORIGIN)
    assert verifier.verify(entries(), chain.blocks).message == "seq 6: export line 8 is not JSON"
    verifier = LedgerVerifier(chain.vkey, ORIGIN)
    assert verifier.verify(chain.entries(), blocks()).message == "block 2: export line 14 is not a block line"


# -- blocks -------------------------------------------------------------------------------------


def edit_header(blocks: list[RawBlock], height: int, **fields: object) -> list[RawBlock]:
    out = list(blocks)
    label, header, note = out[height]
    out[height] = (label, {**header, **fields}, note)
    return out


def test_altered_header_breaks_its_signature() -> None:
    chain = standard_chain()
    blocks = edit_header(chain.blocks, 1, time=chain.ts(5))
    assert chain.verify(blocks=blocks).message == "block 1: header signature does not verify"


def test_header_over_a_wrong_root() -> None:
    chain = Chain()
    chain.seal()
    chain.records(2)
    chain.seal(root=bytes(32))
    assert chain.verify().message == (
        f"block 1: root {b64(bytes(32))} is not the root {b64(chain.root(4))} of the tree of its 4 entries"
    )


def test_substituted_entry_changes_the_root() -> None:
    chain = standard_chain()
    other = chain.record(99)
    result = chain.verify(entries=with_leaf(chain.entries(), 4, other))
    assert result.message.startswith("block 1: root ")


def test_wrong_prev() -> None:
    chain = Chain()
    chain.seal()
    chain.records(1)
    chain.seal(prev=bytes(32))
    digest = chain.headers[0].digest()
    assert chain.verify().message == f"block 1: prev {b64(bytes(32))} is not the digest of block 0 ({b64(digest)})"


def test_genesis_block_prev_must_be_zero() -> None:
    chain = Chain()
    ones = b"\x01" * 32
    chain.seal(prev=ones)
    assert chain.verify().message == f"block 0: prev {b64(ones)} is not 32 zero bytes ({b64(bytes(32))})"


def test_wrong_first_seq() -> None:
    chain = Chain()
    chain.seal()
    chain.records(2)
    chain.seal(first_seq=1)
    assert chain.verify().message == "block 1: first_seq 1 is not the tree size 2 before it"


def test_empty_block() -> None:
    chain = Chain()
    chain.seal()
    chain.seal()
    assert chain.verify().message == "block 1: empty: tree_size 2 is not above first_seq 2"


def test_block_time_goes_back() -> None:
    chain = Chain()
    chain.seal()
    earlier = chain.headers[0].time
    chain.records(1)
    chain.seal(time=chain.ts(-10))
    assert chain.verify().message == f"block 1: time {chain.ts(-11)} is earlier than block 0's time {earlier}"


def test_missing_block() -> None:
    chain = standard_chain()
    blocks = [chain.blocks[0], chain.blocks[2]]
    assert chain.verify(blocks=blocks).message == "block 1: missing or out of order (found block 2 in its place)"


def test_block_filed_under_another_height() -> None:
    chain = standard_chain()
    blocks = list(chain.blocks)
    _label, header, note = blocks[1]
    blocks[1] = (1, {**header, "height": 7}, note)
    assert chain.verify(blocks=blocks).message == "block 1: filed as block 1 but its header says height 7"


def test_header_not_an_object() -> None:
    chain = standard_chain()
    blocks = list(chain.blocks)
    blocks[0] = (0, "nonsense", blocks[0][2])
    assert chain.verify(blocks=blocks).message == "block 0: header is not an object"


def test_checkpoint_with_a_broken_signature() -> None:
    chain = standard_chain()
    label, header, note = chain.blocks[1]
    text, sig_line = note.rsplit("\n\n", 1)
    name, sig = sig_line.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    bad = f"{text}\n\n{name} {b64(bytes(raw))}\n"
    blocks = [*chain.blocks[:1], (label, header, bad), *chain.blocks[2:]]
    assert chain.verify(blocks=blocks).message == f"block 1: checkpoint: signature by {ORIGIN} does not verify"


def test_checkpoint_signed_by_another_key() -> None:
    chain = standard_chain()
    label, header, _note = chain.blocks[1]
    other = sign_note(Checkpoint(ORIGIN, header["tree_size"], chain.root(7)).text(), ORIGIN, key("other").signing)
    blocks = [*chain.blocks[:1], (label, header, other), *chain.blocks[2:]]
    assert chain.verify(blocks=blocks).message == f"block 1: checkpoint: note has no signature by {ORIGIN}"


def test_checkpoint_of_another_size() -> None:
    chain = standard_chain()
    label, header, _note = chain.blocks[1]
    other = sign_note(Checkpoint(ORIGIN, 6, chain.root(6)).text(), ORIGIN, chain.log)
    blocks = [*chain.blocks[:1], (label, header, other), *chain.blocks[2:]]
    assert chain.verify(blocks=blocks).message == "block 1: checkpoint size 6 differs from the header's tree_size 7"


def test_checkpoint_of_another_root() -> None:
    chain = standard_chain()
    label, header, _note = chain.blocks[1]
    other = sign_note(Checkpoint(ORIGIN, 7, bytes(32)).text(), ORIGIN, chain.log)
    blocks = [*chain.blocks[:1], (label, header, other), *chain.blocks[2:]]
    assert chain.verify(blocks=blocks).message == (
        f"block 1: checkpoint root {b64(bytes(32))} differs from the header's root {header['root']}"
    )


def test_checkpoint_with_cosignatures_verifies() -> None:
    chain = standard_chain()
    label, header, note = chain.blocks[2]
    cosigned = note + f"\u2014 witness.test {b64(bytes(76))}\n"
    assert chain.verify(blocks=[*chain.blocks[:2], (label, header, cosigned)]).ok


# -- setup and the helpers ----------------------------------------------------------------------


def test_log_key_must_name_the_origin() -> None:
    chain = Chain()
    with pytest.raises(SetupError, match="not the origin"):
        LedgerVerifier(chain.vkey, "elsewhere.test/log")
    with pytest.raises(SetupError, match="log key"):
        verify_ledger("not a key", ORIGIN, [], [])


def test_a_verifier_is_used_once() -> None:
    chain = standard_chain()
    verifier = LedgerVerifier(chain.vkey, ORIGIN)
    assert verifier.verify(chain.entries(), chain.blocks).ok
    with pytest.raises(RuntimeError):
        verifier.verify(chain.entries(), chain.blocks)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"sig": "x"},
        {"a": 1, "sig": "QUJD"},
        {"nested": {"sig": "y", "z": [',"sig":"']}},
        {"名": "数链", "emoji": "\U0001f600"},
    ],
)
def test_signed_bytes_cut_from_the_leaf_equal_the_envelope_method(body: dict[str, object]) -> None:
    env = parse_envelope(sign_envelope(key("dept").signing, "record.commit", body))
    assert signed_bytes(env) == env.signed_bytes()


def test_signed_bytes_when_the_body_repeats_the_signature() -> None:
    signer = key("dept").signing
    first = parse_envelope(sign_envelope(signer, "record.commit", {}, ts="2026-01-01T00:00:00.000000Z"))
    body = {"sig": b64(first.sig)}
    env = parse_envelope(sign_envelope(signer, "record.commit", body, ts="2026-01-01T00:00:00.000000Z"))
    assert signed_bytes(env) == env.signed_bytes()


def test_check_entry_verifies_the_self_signed_genesis() -> None:
    chain = Chain()
    _env, digest, verified = check_entry(chain.leaves[0], {})
    assert verified and len(digest) == 32
    _env, _digest, verified = check_entry(chain.leaves[2] if len(chain.leaves) > 2 else chain.leaves[1], {})
    assert not verified  # signed by the admin, whose key the checker was not given


def test_checked_envelope_time_is_parse_ts() -> None:
    env = parse_envelope(sign_envelope(key("dept").signing, "record.commit", {}, ts="2026-03-04T05:06:07.123456Z"))
    checked = checked_envelope(env)
    assert isinstance(checked, CheckedEnvelope)
    assert checked.time == parse_ts(env.ts) == env.time


def test_non_ascii_digits_in_ts_are_refused() -> None:
    chain = Chain()
    chain.seal()
    text = chain.ts()
    arabic = text[:14] + "".join(chr(0x0660 + int(c)) for c in text[14:16]) + text[16:]
    chain.add(chain.record(2, ts=arabic))
    chain.seal()
    assert chain.verify().message == f"seq 2: time {arabic!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ"


def test_verifier_module_imports_no_database_or_web_code() -> None:
    code = (
        "import sys, audit.verifier\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel', 'fastapi', 'starlette')"
        " or m in ('ledger.store', 'ledger.schema', 'ledger.sequencer', 'audit.sources', 'audit.export'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_packed_fingerprints_match_whole_records_only() -> None:
    from audit.verifier import _holds

    a, b = bytes(range(16)), bytes(range(16, 32))
    packed = bytearray(a + b)
    assert _holds(packed, a) and _holds(packed, b)
    assert not _holds(packed, bytes(range(8, 24)))  # straddles two records
    assert not _holds(bytearray(), a)
    assert _holds(bytearray(bytes(range(8, 24)) + a), a)
