"""The key registry's rules, on envelopes alone (no database): genesis, who registers, rotation,
revocation, validity windows and which role may sign which type."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keys.keystore import StoredKey
from keys.registry import KeyRegistry, replay_registry
from ledger.envelope import Envelope, parse_envelope, sign_envelope
from ledger.errors import EnvelopeError, KeyError_, LedgerError, SignatureError
from ledger.timefmt import format_ts
from tests.support import record_body, register_body, stored_key

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)


def t(seconds: float) -> str:
    return format_ts(T0 + timedelta(seconds=seconds))


ADMIN = stored_key("admin", "admin")
ADMIN2 = stored_key("admin2", "admin")
DEPT = stored_key("dept", "department")
DEPT_NEW = stored_key("dept-new", "department")
OTHER_DEPT = stored_key("other-dept", "department")
CITIZEN = stored_key("citizen", "citizen")
SERVICE = stored_key("service", "service")
AUDITOR = stored_key("auditor", "auditor")
WITNESS = stored_key("witness", "witness")


def env(signer: StoredKey, entry_type: str, body: dict[str, Any], ts: str) -> Envelope:
    return parse_envelope(sign_envelope(signer.signing, entry_type, body, ts=ts))


def reg_env(signer: StoredKey, key: StoredKey, role: str, ts: str, changes: dict[str, Any] | None = None) -> Envelope:
    """A registration of ``key``; ``changes`` overrides body fields (``...`` removes one)."""
    body = register_body(key, role)
    body.update(changes or {})
    body = {k: v for k, v in body.items() if v is not ...}
    return env(signer, "identity.register", body, ts)


def rotate_env(signer: StoredKey, old: StoredKey, new: StoredKey, ts: str, **changes: Any) -> Envelope:
    body = {
        "key_id": new.key_id,
        "replaces": old.key_id,
        "ed25519": new.public_b64,
        "name": "rotated",
        **({"x25519": new.x25519_b64} if new.x25519 is not None else {}),
    }
    body.update(changes)
    return env(signer, "identity.rotate", body, ts)


def revoke_env(signer: StoredKey, target: StoredKey, ts: str) -> Envelope:
    return env(signer, "identity.revoke", {"key_id": target.key_id}, ts)


def record_env(signer: StoredKey, ts: str, i: int = 0) -> Envelope:
    return env(signer, "record.commit", record_body(i), ts)


class Chain:
    """A registry fed entries in seq order, as the sequencer feeds it."""

    def __init__(self) -> None:
        self.reg = KeyRegistry()
        self.seq = 0
        self.entries: list[tuple[int, Envelope]] = []

    def add(self, e: Envelope) -> None:
        self.reg.check(self.seq, e)
        self.reg.apply(self.seq, e)
        self.entries.append((self.seq, e))
        self.seq += 1

    def refuse(self, e: Envelope, error: type[LedgerError], match: str | None = None) -> None:
        before = self.reg.copy()
        with pytest.raises(error, match=match):
            self.reg.check(self.seq, e)
        assert self.reg.keys == before.keys  # a refused check changes nothing

    def accepts(self, e: Envelope) -> None:
        self.reg.check(self.seq, e)


def world() -> Chain:
    """Genesis admin at t=0, then a department (t=10), a citizen (t=11), a service (t=12), an auditor (t=13)."""
    c = Chain()
    c.add(reg_env(ADMIN, ADMIN, "admin", t(0)))
    c.add(reg_env(ADMIN, DEPT, "department", t(10)))
    c.add(reg_env(ADMIN, CITIZEN, "citizen", t(11)))
    c.add(reg_env(ADMIN, SERVICE, "service", t(12)))
    c.add(reg_env(ADMIN, AUDITOR, "auditor", t(13)))
    return c


# -- genesis -----------------------------------------------------------------------------------------


def test_good_genesis() -> None:
    c = Chain()
    c.add(reg_env(ADMIN, ADMIN, "admin", t(0)))
    rec = c.reg.keys[ADMIN.key_id]
    assert (rec.role, rec.registered_seq, rec.valid_from, rec.valid_until) == ("admin", 0, T0, None)
    assert c.reg.public_key(ADMIN.key_id) == bytes(ADMIN.signing.verify_key)


@pytest.mark.parametrize(
    "genesis, error",
    [
        pytest.param(lambda: reg_env(DEPT, DEPT, "department", t(0)), KeyError_, id="department"),
        pytest.param(lambda: reg_env(CITIZEN, CITIZEN, "citizen", t(0)), KeyError_, id="citizen"),
        pytest.param(lambda: reg_env(ADMIN, ADMIN2, "admin", t(0)), KeyError_, id="admin signed by another key"),
        pytest.param(lambda: record_env(ADMIN, t(0)), KeyError_, id="not a registration"),
        pytest.param(lambda: revoke_env(ADMIN, ADMIN, t(0)), KeyError_, id="revocation"),
        pytest.param(
            lambda: reg_env(ADMIN, ADMIN, "admin", t(0), {"ed25519": ADMIN2.public_b64}),
            EnvelopeError,
            id="key id of another key",
        ),
        pytest.param(lambda: reg_env(ADMIN, ADMIN, "admin", t(0), {"name": ""}), EnvelopeError, id="empty name"),
    ],
)
def test_bad_genesis(genesis: Any, error: type[LedgerError]) -> None:
    Chain().refuse(genesis(), error)


def test_genesis_signature_is_checked() -> None:
    good = sign_envelope(ADMIN.signing, "identity.register", register_body(ADMIN, "admin"), ts=t(0))
    forged = parse_envelope(good.replace(b'"role":"admin"', b'"role":"admin","x":1'))
    Chain().refuse(forged, SignatureError)


# -- registration --------------------------------------------------------------------------------------


@pytest.mark.parametrize("signer", [DEPT, CITIZEN, SERVICE, AUDITOR], ids=lambda k: k.role)
def test_only_an_admin_registers(signer: StoredKey) -> None:
    c = world()
    c.refuse(reg_env(signer, OTHER_DEPT, "department", t(20)), KeyError_, "only an admin")


def test_an_admin_registers_every_role() -> None:
    c = world()
    c.add(reg_env(ADMIN, WITNESS, "witness", t(20)))
    c.add(reg_env(ADMIN, ADMIN2, "admin", t(21)))
    c.add(reg_env(ADMIN2, OTHER_DEPT, "department", t(22)))  # a second admin registers too
    assert {r.role for r in c.reg.keys.values()} == {"admin", "department", "citizen", "service", "auditor", "witness"}


@pytest.mark.parametrize(
    "changes, error",
    [
        pytest.param({"role": "superuser"}, EnvelopeError, id="unknown role"),
        pytest.param({"role": ["admin"]}, EnvelopeError, id="role not a string"),
        pytest.param({"role": None}, EnvelopeError, id="role null"),
        pytest.param({"x25519": ...}, EnvelopeError, id="department without x25519"),
        pytest.param({"x25519": "AAAA"}, EnvelopeError, id="x25519 not 32 bytes"),
        pytest.param({"ed25519": "!!"}, EnvelopeError, id="ed25519 not base64"),
        pytest.param({"ed25519": base64.b64encode(bytes(31)).decode()}, EnvelopeError, id="ed25519 31 bytes"),
        pytest.param({"key_id": "0" * 32}, EnvelopeError, id="key id of no key"),
        pytest.param({"key_id": 7}, EnvelopeError, id="key id not a string"),
        pytest.param({"name": "x" * 201}, EnvelopeError, id="name too long"),
        pytest.param({"name": 5}, EnvelopeError, id="name not a string"),
    ],
)
def test_malformed_registration(changes: dict[str, Any], error: type[LedgerError]) -> None:
    c = world()
    c.refuse(reg_env(ADMIN, OTHER_DEPT, "department", t(20), changes), error)


def test_citizen_needs_a_subject() -> None:
    c = world()
    someone = stored_key("citizen-2", "citizen")
    c.refuse(reg_env(ADMIN, someone, "citizen", t(20), {"subject": ...}), EnvelopeError)


def test_a_key_is_registered_once() -> None:
    c = world()
    c.refuse(reg_env(ADMIN, DEPT, "department", t(20)), KeyError_, "already registered")


def test_unknown_key_is_refused() -> None:
    c = world()
    c.refuse(record_env(OTHER_DEPT, t(20)), KeyError_, "not registered")


# -- validity windows ----------------------------------------------------------------------------------


def test_a_key_is_not_valid_before_its_registration() -> None:
    c = world()  # DEPT registered at t=10
    c.refuse(record_env(DEPT, t(9.999999)), KeyError_, "not yet valid")
    c.accepts(record_env(DEPT, t(10)))


def test_rotation_ends_the_old_key_at_the_rotation_time() -> None:
    c = world()
    c.add(record_env(DEPT, t(50), 1))  # appended with the old key before the rotation: stays valid
    late = record_env(DEPT, t(60), 2)  # signed before the rotation, arriving after it
    c.add(rotate_env(DEPT, DEPT, DEPT_NEW, t(100)))  # the department rotates its own key
    old = c.reg.keys[DEPT.key_id]
    assert (old.ended_how, old.valid_until, old.replaced_by) == (
        "rotated",
        T0 + timedelta(seconds=100),
        DEPT_NEW.key_id,
    )
    new = c.reg.keys[DEPT_NEW.key_id]
    assert (new.role, new.valid_from) == ("department", T0 + timedelta(seconds=100))
    # after the rotation's seq nothing more is taken from the old key, whatever time it claims
    c.refuse(late, KeyError_, "rotated at seq")
    c.refuse(record_env(DEPT, t(99.999999)), KeyError_, "rotated at seq")
    c.refuse(record_env(DEPT, t(100)), KeyError_, "rotated")
    c.refuse(record_env(DEPT, t(1000)), KeyError_, "rotated")
    c.accepts(record_env(DEPT_NEW, t(100)))
    c.refuse(record_env(DEPT_NEW, t(99)), KeyError_, "not yet valid")


def test_an_admin_may_rotate_any_key_others_only_their_own() -> None:
    c = world()
    c.refuse(rotate_env(CITIZEN, DEPT, DEPT_NEW, t(100)), KeyError_, "only rotate or revoke its own")
    c.add(rotate_env(ADMIN, DEPT, DEPT_NEW, t(100)))
    assert c.reg.keys[DEPT.key_id].ended_how == "rotated"


def test_rotation_rules() -> None:
    c = world()
    c.refuse(rotate_env(ADMIN, DEPT, DEPT_NEW, t(100), role="citizen"), EnvelopeError, "keeps the role")
    c.refuse(rotate_env(ADMIN, OTHER_DEPT, DEPT_NEW, t(100)), KeyError_, "not registered")
    c.refuse(rotate_env(ADMIN, DEPT, CITIZEN, t(100)), KeyError_, "already registered")
    c.refuse(rotate_env(ADMIN, DEPT, DEPT_NEW, t(100), x25519=None), EnvelopeError)  # a department keeps x25519
    c.add(rotate_env(ADMIN, DEPT, DEPT_NEW, t(100)))
    c.refuse(rotate_env(ADMIN, DEPT, OTHER_DEPT, t(200)), KeyError_, "already rotated")
    # a rotated key can no longer rotate (it signs after its end)
    c.refuse(rotate_env(DEPT, DEPT, OTHER_DEPT, t(200)), KeyError_)


def test_revoked_key_is_refused_after_revocation_but_not_before() -> None:
    c = world()
    c.add(record_env(DEPT, t(50)))  # appended before the revocation: stays valid
    signed_before = record_env(DEPT, t(60), 2)
    c.add(revoke_env(ADMIN, DEPT, t(100)))
    rec = c.reg.keys[DEPT.key_id]
    assert (rec.ended_how, rec.valid_until) == ("revoked", T0 + timedelta(seconds=100))
    c.refuse(signed_before, KeyError_, "revoked at seq")  # no back-dated entry after the revocation
    c.refuse(record_env(DEPT, t(100)), KeyError_, "revoked")
    c.refuse(record_env(DEPT, t(5000)), KeyError_, "revoked")
    c.refuse(revoke_env(ADMIN, DEPT, t(200)), KeyError_, "already revoked")
    c.refuse(rotate_env(ADMIN, DEPT, DEPT_NEW, t(200)), KeyError_, "already revoked")


def test_who_may_revoke() -> None:
    c = world()
    c.refuse(revoke_env(DEPT, CITIZEN, t(100)), KeyError_, "only rotate or revoke its own")
    c.refuse(revoke_env(ADMIN, OTHER_DEPT, t(100)), KeyError_, "not registered")
    c.add(revoke_env(CITIZEN, CITIZEN, t(100)))  # a key may revoke itself
    c.refuse(env(CITIZEN, "consent.grant", {"grant": 1}, t(101)), KeyError_, "revoked")


# -- roles and types -----------------------------------------------------------------------------------

# From DESIGN.md §9: who signs what.
ALLOWED = {
    "dataset.register": {"department"},
    "record.commit": {"department"},
    "agreement.approve": {"department"},
    "consent.grant": {"citizen"},
    "consent.revoke": {"citizen"},
    "access.decision": {"service"},
    "usage.release": {"service"},
    "objection.file": {"citizen"},
}
SIGNERS = {"admin": ADMIN, "department": DEPT, "citizen": CITIZEN, "service": SERVICE, "auditor": AUDITOR}


@pytest.mark.parametrize("entry_type", sorted(ALLOWED))
@pytest.mark.parametrize("role", sorted(SIGNERS))
def test_role_may_sign_only_its_types(entry_type: str, role: str) -> None:
    c = world()
    e = env(SIGNERS[role], entry_type, {"x": 1}, t(20))
    if role in ALLOWED[entry_type]:
        c.accepts(e)
    else:
        c.refuse(e, KeyError_, "may not sign")


# -- signatures and bookkeeping ------------------------------------------------------------------------


def test_signature_is_checked_unless_already_checked() -> None:
    c = world()
    good = sign_envelope(DEPT.signing, "record.commit", record_body(1), ts=t(20))
    forged = parse_envelope(good.replace(b'"dataset":"ds-population"', b'"dataset":"ds-forged"'))
    c.refuse(forged, SignatureError)
    c.reg.check(c.seq, forged, signature_checked=True)  # the caller vouches for it (sequencer cache path)


def test_apply_refuses_going_back() -> None:
    c = world()
    with pytest.raises(ValueError):
        c.reg.apply(2, record_env(DEPT, t(20)))


def test_replay_registry_rebuilds_the_same_state() -> None:
    c = world()
    c.add(rotate_env(ADMIN, DEPT, DEPT_NEW, t(100)))
    c.add(revoke_env(ADMIN, CITIZEN, t(101)))
    again = replay_registry(c.entries)
    assert again.keys == c.reg.keys
    assert again.next_seq == c.seq
    with pytest.raises(KeyError_):
        replay_registry([(0, reg_env(DEPT, DEPT, "department", t(0)))])
