"""An in-memory ledger for consent tests: a key registry and a consent state fed signed envelopes.

Every append goes through ``KeyRegistry.check``, ``ConsentState.check`` and both ``apply``s, exactly as
the sequencer does, with a clock that moves one second per entry unless told otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import nacl.public
import nacl.signing

from consent.agreement import agreement_body, agreement_revoke_body
from consent.catalogue import Dataset, parse_dataset
from consent.commitment import RecordCommitment, commit_record
from consent.decision import Decision, decide, decision_body
from consent.grant import grant_body, grant_revoke_body
from consent.record import record_commit_body
from consent.state import ConsentState
from keys.keyid import key_id
from keys.registry import KeyRegistry
from ledger.envelope import Envelope, parse_envelope, sign_envelope
from ledger.timefmt import format_ts

START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def seeded_key(label: str) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(b"consent test key " + label.encode()).digest())


@dataclass
class Actor:
    """A key on the test ledger: ``name`` is a label, ``kid`` its key id."""

    name: str
    role: str
    signing: nacl.signing.SigningKey
    x25519: nacl.public.PrivateKey | None = None
    subject: str | None = None

    @property
    def kid(self) -> str:
        return key_id(bytes(self.signing.verify_key))

    def identity_body(self, name: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "key_id": self.kid,
            "role": self.role,
            "name": name or self.name,
            "ed25519": base64.b64encode(bytes(self.signing.verify_key)).decode(),
        }
        if self.x25519 is not None:
            body["x25519"] = base64.b64encode(bytes(self.x25519.public_key)).decode()
        if self.subject is not None:
            body["subject"] = self.subject
        return body


@dataclass
class Ledger:
    """Registry + consent state, and the entries appended so far."""

    clock: datetime = START
    registry: KeyRegistry = field(default_factory=KeyRegistry)
    state: ConsentState = field(default_factory=ConsentState)
    entries: list[Envelope] = field(default_factory=list)
    actors: dict[str, Actor] = field(default_factory=dict)
    _requests: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        admin = Actor("admin", "admin", seeded_key("admin"))
        self.actors["admin"] = admin
        self.append(admin, "identity.register", admin.identity_body())

    @property
    def next_seq(self) -> int:
        return len(self.entries)

    def ts(self) -> str:
        return format_ts(self.clock)

    def append(self, actor: Actor, entry_type: str, body: dict[str, Any], *, at: datetime | None = None) -> int:
        """Sign and append; raises what the registry or the consent state refuses (and appends nothing)."""
        when = at or self.clock
        env = parse_envelope(sign_envelope(actor.signing, entry_type, body, ts=format_ts(when)))
        seq = self.next_seq
        signer = self.registry.check(seq, env)
        self.state.check(seq, env, signer, self.registry)
        self.registry.apply(seq, env)
        self.state.apply(seq, env, signer, self.registry)
        self.entries.append(env)
        if at is None:
            self.clock += timedelta(seconds=1)
        return seq

    # -- identities ----------------------------------------------------------------------------

    def register(self, name: str, role: str, *, subject: str | None = None) -> Actor:
        x = (
            nacl.public.PrivateKey(hashlib.sha256(b"x25519 " + name.encode()).digest())
            if role == "department"
            else None
        )
        actor = Actor(name, role, seeded_key(name), x, subject)
        self.append(self.actors["admin"], "identity.register", actor.identity_body())
        self.actors[name] = actor
        return actor

    def rotate(self, actor: Actor) -> Actor:
        """Rotate ``actor``'s key (signed by the key itself); the returned actor holds the new key."""
        label = f"{actor.name}/{len(self.entries)}"
        x = nacl.public.PrivateKey(hashlib.sha256(b"x25519 " + label.encode()).digest()) if actor.x25519 else None
        new = Actor(actor.name, actor.role, seeded_key(label), x, actor.subject)
        body = new.identity_body()
        body["replaces"] = actor.kid
        del body["name"]
        body.pop("subject", None)
        body.pop("role")
        self.append(actor, "identity.rotate", body)
        self.actors[actor.name] = new
        return new

    def revoke_key(self, actor: Actor) -> int:
        return self.append(self.actors["admin"], "identity.revoke", {"key_id": actor.kid})

    # -- catalogue and records -----------------------------------------------------------------

    def register_dataset(self, owner: Actor, body: dict[str, Any]) -> Dataset:
        self.append(owner, "dataset.register", {**body, "owner": owner.kid})
        return parse_dataset({**body, "owner": owner.kid})

    def commit(
        self, owner: Actor, dataset: Dataset, record: str, subject: str, values: dict[str, Any]
    ) -> tuple[int, RecordCommitment]:
        latest = self.state.latest_commit(dataset.dataset, record)
        rc = commit_record(dataset, values)
        body = record_commit_body(
            dataset=dataset.dataset,
            record=record,
            subject=subject,
            commitment=rc.root,
            version=1 if latest is None else latest.version + 1,
            replaces=None if latest is None else latest.seq,
        )
        return self.append(owner, "record.commit", body), rc

    # -- decisions -----------------------------------------------------------------------------

    def request_id(self) -> str:
        return hashlib.sha256(f"request {next(self._requests)}".encode()).hexdigest()

    def decide(self, requester: Actor, dataset: str, record: str, fields: list[str], purpose: str) -> Decision:
        return decide(
            self.state,
            self.registry,
            requester=requester.kid,
            dataset=dataset,
            record=record,
            fields=fields,
            purpose=purpose,
            at=self.clock,
        )

    def log_decision(
        self, requester: Actor, dataset: str, record: str, fields: list[str], purpose: str
    ) -> tuple[Decision, int]:
        """Decide at the clock's time and append the decision, signed by the service key."""
        decision = self.decide(requester, dataset, record, fields, purpose)
        body = decision_body(
            decision,
            request=self.request_id(),
            requester=requester.kid,
            dataset=dataset,
            record=record,
            fields=fields,
            purpose=purpose,
        )
        return decision, self.append(self.actors["service"], "access.decision", body)

    # -- agreements and grants ------------------------------------------------------------------

    def approve(
        self,
        owner: Actor,
        requester: Actor,
        scope: dict[str, dict[str, str]],
        purposes: list[str],
        *,
        legal_basis: str = "履行职责",
        consent_required: bool = False,
        start: datetime | None = None,
        end: datetime | None = None,
        commitment: dict[str, str] | None = None,
    ) -> int:
        body = agreement_body(
            owner=owner.kid,
            requester=requester.kid,
            scope=scope,
            purposes=purposes,
            legal_basis=legal_basis,
            consent_required=consent_required,
            valid_from=start or self.clock - DAY,
            valid_until=end or self.clock + 365 * DAY,
            commitment=commitment,
        )
        return self.append(owner, "agreement.approve", body)

    def revoke_agreement(self, owner: Actor, seq: int, reason: str = "场景结束") -> int:
        return self.append(owner, "agreement.revoke", agreement_revoke_body(seq, reason))

    def grant(
        self,
        citizen: Actor,
        grantee: Actor,
        scope: dict[str, list[str]],
        purpose: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        max_uses: int | None = None,
    ) -> int:
        assert citizen.subject is not None
        body = grant_body(
            subject=citizen.subject,
            grantee=grantee.kid,
            scope=scope,
            purpose=purpose,
            valid_from=start or self.clock - DAY,
            valid_until=end or self.clock + 30 * DAY,
            max_uses=max_uses,
        )
        return self.append(citizen, "consent.grant", body)

    def revoke_grant(self, citizen: Actor, seq: int, reason: str = "不再同意") -> int:
        return self.append(citizen, "consent.revoke", grant_revoke_body(seq, reason))


def replayed(entries: Sequence[Envelope]) -> tuple[KeyRegistry, ConsentState]:
    """Registry and state fed ``entries`` as a writer's cache is (apply only, as ``Sequencer._sync``)."""
    registry, state = KeyRegistry(), ConsentState()
    for seq, env in enumerate(entries):
        apply(registry, state, seq, env)
    return registry, state


def apply(registry: KeyRegistry, state: ConsentState, seq: int, env: Envelope) -> None:
    signer = None if seq == 0 else registry.signer(env, seq)
    registry.apply(seq, env)
    state.apply(seq, env, signer, registry)
