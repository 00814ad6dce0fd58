"""The consent state derived from the ledger: catalogue, records, agreements, grants, decisions, releases,
objections. A state machine like ``keys.registry.KeyRegistry``: ``check`` says whether an entry may be
appended now (raising a ``ConsentError`` or ``LedgerError`` naming the rule), ``apply`` records it.

Feed it every entry in seq order, identity entries included, each after ``KeyRegistry.check`` (which
gives the signer's record) and with the registry as it stood before the entry::

    signer = registry.check(seq, env); state.check(seq, env, signer, registry)
    registry.apply(seq, env);          state.apply(seq, env, signer, registry)

Every look-up is a dict access; nothing scans the ledger. Identities are compared as principals (the
first key of a rotation chain, ``consent.principal``), so rotating a key keeps its agreements and grants.
Revocations take effect in seq order: once on the ledger, a revoked agreement or grant justifies nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent.agreement import Agreement, parse_agreement, parse_agreement_revoke, verify_commitment
from consent.catalogue import Dataset, parse_dataset
from consent.decision import ALLOW, DecisionEntry, decide, parse_decision
from consent.errors import (
    CommitmentSignatureError,
    DecisionMismatch,
    InvalidBody,
    NotOwner,
    NotSubject,
    StateConflict,
    UnknownDataset,
    UnknownEntry,
    UnknownRecord,
)
from consent.grant import ConsentGrant, parse_grant, parse_grant_revoke
from consent.objection import Objection, parse_objection, parse_resolution
from consent.principal import PrincipalIndex, current_key, key_valid_at
from consent.record import RecordCommit, parse_record_commit
from consent.release import UsageRelease, parse_usage_release
from keys.registry import IDENTITY_TYPES, KeyRecord, KeyRegistry
from keys.roles import SIGNER_ROLES
from ledger.envelope import Envelope
from ledger.errors import KeyError_

LIVE = "live"
REVOKED = "revoked"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
EXHAUSTED = "exhausted"


@dataclass(slots=True)
class DatasetState:
    seq: int
    dataset: Dataset
    owner: str  # principal of the owning department


@dataclass(slots=True)
class RecordHead:
    """What the rules read of a record: its subject and its latest commit's ``seq`` and ``version``."""

    dataset: str
    record: str
    subject: str
    seq: int
    version: int


@dataclass(slots=True)
class RecordState(RecordHead):
    """A record's latest commit (``seq``, ``version``, ``commitment``) and every commit's seq, oldest first."""

    commitment: bytes
    seqs: list[int]


@dataclass(slots=True)
class AgreementState:
    seq: int
    agreement: Agreement
    owner: str  # principals
    requester: str
    revoked_seq: int | None = None

    def status(self, at: datetime) -> str:
        """live | revoked | expired | not_yet_valid at ``at``."""
        if self.revoked_seq is not None:
            return REVOKED
        if at < self.agreement.valid_from:
            return NOT_YET_VALID
        return LIVE if at < self.agreement.valid_until else EXPIRED


@dataclass(slots=True)
class GrantState:
    seq: int
    grant: ConsentGrant
    grantee: str  # principal
    uses: int = 0  # allow decisions resting on this grant
    revoked_seq: int | None = None

    @property
    def uses_left(self) -> int | None:
        """Uses left (None: unlimited)."""
        return None if self.grant.max_uses is None else max(self.grant.max_uses - self.uses, 0)

    @property
    def has_uses_left(self) -> bool:
        return self.grant.max_uses is None or self.uses < self.grant.max_uses

    def status(self, at: datetime) -> str:
        """live | revoked | expired | not_yet_valid | exhausted at ``at``."""
        if self.revoked_seq is not None:
            return REVOKED
        if at < self.grant.valid_from:
            return NOT_YET_VALID
        if at >= self.grant.valid_until:
            return EXPIRED
        return LIVE if self.has_uses_left else EXHAUSTED


@dataclass(slots=True)
class DecisionState:
    seq: int
    entry: DecisionEntry
    requester: str  # principal
    at: datetime
    released_seq: int | None = None


@dataclass(slots=True)
class ReleaseState:
    seq: int
    release: UsageRelease
    subject: str
    requester: str  # principal


@dataclass(slots=True)
class ObjectionState:
    seq: int
    objection: Objection
    owner: str  # principal of the dataset's owner, who resolves it
    resolved_seq: int | None = None
    outcome: str | None = None
    correction: int | None = None

    @property
    def is_open(self) -> bool:
        return self.resolved_seq is None


def _push(index: dict[Any, list[Any]], key: Any, value: Any) -> None:
    found = index.get(key)
    if found is None:
        index[key] = [value]
    else:
        found.append(value)


def _pop(index: dict[Any, list[Any]], key: Any, value: Any) -> None:
    """Take back ``_push(index, key, value)``, the last push under ``key``."""
    found = index[key]
    if found[-1] is not value and found[-1] != value:
        raise ValueError(f"index {key!r}: {value!r} is not the last entry pushed")
    found.pop()
    if not found:
        del index[key]


Check = Callable[["ConsentState", int, Envelope, KeyRecord, KeyRegistry], Any]
Apply = Callable[["ConsentState", int, Envelope, Any, KeyRegistry], None]


class ConsentState:
    """Everything the consent rules need, derived from the ledger in seq order."""

    def __init__(self) -> None:
        self.next_seq = 0  # the seq of the next entry to apply
        self.principals = PrincipalIndex()
        self.datasets: dict[str, DatasetState] = {}
        self.records: dict[tuple[str, str], RecordState] = {}
        self.commits: dict[int, RecordCommit] = {}
        self.agreements: dict[int, AgreementState] = {}
        self.grants: dict[int, GrantState] = {}
        self.decisions: dict[int, DecisionState] = {}
        self.releases: dict[int, ReleaseState] = {}
        self.objections: dict[int, ObjectionState] = {}
        self._datasets_of_owner: dict[str, list[str]] = {}
        self._records_of_subject: dict[str, list[tuple[str, str]]] = {}
        self._agreements_for: dict[tuple[str, str], list[AgreementState]] = {}
        self._agreements_of: dict[str, list[int]] = {}
        self._grants_for: dict[tuple[str, str, str], list[GrantState]] = {}
        self._grants_of_subject: dict[str, list[int]] = {}
        self._grants_of_grantee: dict[str, list[int]] = {}
        self._requests: dict[str, int] = {}
        self._decisions_of_subject: dict[str, list[int]] = {}
        self._decisions_of_requester: dict[str, list[int]] = {}
        self._releases_of_subject: dict[str, list[int]] = {}
        self._releases_of_requester: dict[str, list[int]] = {}
        self._objections_of_subject: dict[str, list[int]] = {}
        self._objections_of_owner: dict[str, list[int]] = {}
        self._checked: tuple[int, bytes, Any] | None = None  # the last entry checked, parsed

    def copy(self) -> ConsentState:
        return copy.deepcopy(self)

    # ---------------------------------------------------------------------------------------------
    # The state machine
    # ---------------------------------------------------------------------------------------------

    def check(self, seq: int, env: Envelope, signer: KeyRecord | None, registry: KeyRegistry) -> None:
        """Raise unless ``env`` may be appended as entry ``seq`` now. Changes nothing."""
        if seq < self.next_seq:
            raise ValueError(f"consent state is already past seq {seq}")
        if env.type in IDENTITY_TYPES:
            return
        if signer is None:
            raise KeyError_(f"{env.type} needs a registered signer")
        allowed = SIGNER_ROLES.get(env.type)
        if allowed is not None and signer.role not in allowed:
            raise KeyError_(f"a {signer.role} key may not sign {env.type}")
        parsed = _CHECKS[env.type](self, seq, env, signer, registry)
        self._checked = (seq, env.leaf, parsed)

    def apply(self, seq: int, env: Envelope, signer: KeyRecord | None, registry: KeyRegistry) -> None:
        """Record the effect of entry ``seq`` (already checked, now or when it was appended)."""
        if seq < self.next_seq:
            raise ValueError(f"consent state is already past seq {seq}")
        self.next_seq = seq + 1
        checked, self._checked = self._checked, None
        if env.type in IDENTITY_TYPES:
            self.principals.observe(env)
            return
        parse = _PARSERS[env.type]
        parsed = checked[2] if checked is not None and checked[:2] == (seq, env.leaf) else parse(env.body)
        getattr(self, _APPLIES[env.type].__name__)(seq, env, parsed, registry)  # a subclass's own storage

    def undo(self, seq: int, env: Envelope, registry: KeyRegistry) -> None:
        """Take back ``apply`` of entry ``seq``, the last one applied, with ``registry`` as ``apply`` had it
        (undo the consent state before the registry). Undoing entries newest first leaves the state as it
        was before them, dict order included: what a writer does when a commit it had applied fails."""
        if seq != self.next_seq - 1:
            raise ValueError(f"consent state: seq {seq} is not the last entry applied ({self.next_seq - 1})")
        self._checked = None
        if env.type in IDENTITY_TYPES:
            self.principals.forget(env)
        else:
            getattr(self, _UNDOS[env.type].__name__)(seq, env, _PARSERS[env.type](env.body), registry)
        self.next_seq = seq

    # ---------------------------------------------------------------------------------------------
    # Read helpers (for decide, the API and reports); lists are copies
    # ---------------------------------------------------------------------------------------------

    def principal_of(self, registry: KeyRegistry, key_id: str) -> str:
        """The principal (first key of its rotation chain) of ``key_id``."""
        return self.principals.of(registry, key_id)

    def require_dataset(self, dataset: str) -> DatasetState:
        found = self.datasets.get(dataset)
        if found is None:
            raise UnknownDataset(f"no dataset {dataset!r} is registered")
        return found

    def require_record(self, dataset: str, record: str) -> RecordHead:
        self.require_dataset(dataset)
        found = self._record(dataset, record)
        if found is None:
            raise UnknownRecord(f"no record {record!r} is committed in dataset {dataset}")
        return found

    def latest_commit(self, dataset: str, record: str) -> RecordState | None:
        return self.records.get((dataset, record))

    def commit(self, seq: int) -> RecordCommit | None:
        """The ``record.commit`` at ``seq`` (any version)."""
        return self.commits.get(seq)

    def datasets_of_owner(self, owner: str) -> list[str]:
        return list(self._datasets_of_owner.get(owner, ()))

    def records_of_subject(self, subject: str) -> list[RecordState]:
        return [self.records[k] for k in self._records_of_subject.get(subject, ())]

    def agreements_for(self, requester: str, dataset: str) -> list[AgreementState]:
        """Agreements (any status) whose requester principal is ``requester`` and whose scope has ``dataset``."""
        return list(self._agreements_for.get((requester, dataset), ()))

    def agreements_of(self, department: str) -> list[int]:
        """Seqs of the agreements a department principal owns or requested."""
        return list(self._agreements_of.get(department, ()))

    def grants_for(self, subject: str, grantee: str, dataset: str) -> list[GrantState]:
        """Grants (any status) by ``subject`` to grantee principal ``grantee`` whose scope has ``dataset``."""
        return list(self._grants_for.get((subject, grantee, dataset), ()))

    def grant_seqs(self) -> Sequence[int]:
        """Every grant's seq, ascending."""
        return sorted(self.grants)

    def grants_of_subject(self, subject: str) -> list[int]:
        return list(self._grants_of_subject.get(subject, ()))

    def grants_of_grantee(self, grantee: str) -> list[int]:
        return list(self._grants_of_grantee.get(grantee, ()))

    def decision_of_request(self, request: str) -> int | None:
        """The seq of the decision already logged for a request hash, if any."""
        return self._requests.get(request)

    def decisions_of_subject(self, subject: str) -> list[int]:
        return list(self._decisions_of_subject.get(subject, ()))

    def decisions_of_requester(self, requester: str) -> list[int]:
        return list(self._decisions_of_requester.get(requester, ()))

    def releases_of_subject(self, subject: str) -> list[int]:
        return list(self._releases_of_subject.get(subject, ()))

    def releases_of_requester(self, requester: str) -> list[int]:
        return list(self._releases_of_requester.get(requester, ()))

    def objections_of_subject(self, subject: str) -> list[int]:
        return list(self._objections_of_subject.get(subject, ()))

    def objections_of_owner(self, owner: str) -> list[int]:
        return list(self._objections_of_owner.get(owner, ()))

    # ---------------------------------------------------------------------------------------------
    # Storage the rules read and change (``consent.compact`` keeps the same facts packed)
    # ---------------------------------------------------------------------------------------------

    def _record(self, dataset: str, record: str) -> RecordHead | None:
        """The latest commit of a record, if any."""
        return self.records.get((dataset, record))

    def _grant(self, seq: int) -> GrantState | None:
        """The ``consent.grant`` at ``seq``, if it is one."""
        return self.grants.get(seq)

    def _is_commit_of(self, seq: int, dataset: str, record: str) -> bool | None:
        """Whether the ``record.commit`` at ``seq`` commits that record; None if ``seq`` is no commit."""
        c = self.commits.get(seq)
        return None if c is None else (c.dataset, c.record) == (dataset, record)

    def _use_grant(self, seq: int) -> None:
        """An allow decision rested on grant ``seq``."""
        self.grants[seq].uses += 1

    def _revoke_grant(self, seq: int, revoked_seq: int) -> None:
        self.grants[seq].revoked_seq = revoked_seq

    # ---------------------------------------------------------------------------------------------
    # Checks, one per entry type; each returns the parsed body
    # ---------------------------------------------------------------------------------------------

    def _live_department(self, registry: KeyRegistry, kid: str, at: datetime, where: str) -> str:
        """The principal of department key ``kid``, whose rotation chain must not be revoked at ``at``."""
        rec = registry.keys.get(kid)
        if rec is None or rec.role != "department":
            raise InvalidBody(f"{where} {kid} is not a registered department key")
        cur = current_key(registry, kid)
        if cur is None or (cur.valid_until is not None and at >= cur.valid_until):
            raise InvalidBody(f"{where} {kid}: the department's current key is revoked")
        return self.principal_of(registry, kid)

    def _check_dataset(self, seq: int, env: Envelope, signer: KeyRecord, registry: KeyRegistry) -> Dataset:
        ds = parse_dataset(env.body)
        if ds.dataset in self.datasets:
            raise StateConflict(f"dataset {ds.dataset} is already registered (seq {self.datasets[ds.dataset].seq})")
        if self.principal_of(registry, ds.owner) != self.principal_of(registry, signer.key_id):
            raise NotOwner(f"dataset.register owner {ds.owner} is not the signer {signer.key_id}")
        return ds

    def _check_record(self, seq: int, env: Envelope, signer: KeyRecord, registry: KeyRegistry) -> RecordCommit:
        rc = parse_record_commit(env.body)
        ds = self.require_dataset(rc.dataset)
        if self.principal_of(registry, signer.key_id) != ds.owner:
            raise NotOwner(f"only the owner of {rc.dataset} commits its records")
        latest = self._record(rc.dataset, rc.record)
        if latest is None:
            if rc.version != 1 or rc.replaces is not None:
                raise StateConflict(f"record {rc.record} is new: its commit is version 1 and replaces null")
        else:
            if rc.version != latest.version + 1 or rc.replaces != latest.seq:
                raise StateConflict(
                    f"record {rc.record} is at version {latest.version} (seq {latest.seq}): the next commit is "
                    f"version {latest.version + 1} replacing {latest.seq}"
                )
            if rc.subject != latest.subject:
                raise StateConflict(f"a new version of record {rc.record} keeps its subject")
        return rc

    def _check_agreement(self, seq: int, env: Envelope, signer: KeyRecord, registry: KeyRegistry) -> Agreement:
        ag = parse_agreement(env.body)
        me = self.principal_of(registry, signer.key_id)
        if self.principal_of(registry, ag.owner) != me:
            raise NotOwner(f"agreement.approve owner {ag.owner} is not the signer {signer.key_id}")
        for name, fields in ag.scope.items():
            ds = self.require_dataset(name)
            if ds.owner != me:
                raise NotOwner(f"dataset {name} belongs to another department")
            ds.dataset.require_fields(fields)
            if ag.consent_required and not ds.dataset.personal:
                raise InvalidBody(f"dataset {name} holds no personal data: it cannot require the subject's consent")
        at = env.time
        requester = self._live_department(registry, ag.requester, at, "agreement.approve requester")
        if ag.commitment is not None:
            rec = registry.keys.get(ag.commitment.signer)
            if rec is None or self.principal_of(registry, rec.key_id) != requester:
                raise CommitmentSignatureError("the commitment is not signed by the requester")
            if not key_valid_at(rec, at):
                raise CommitmentSignatureError(f"the commitment's key {rec.key_id} is not valid at {env.ts}")
            verify_commitment(ag, rec.ed25519)
        return ag

    def _check_agreement_revoke(self, seq: int, env: Envelope, signer: KeyRecord, registry: KeyRegistry) -> Any:
        r = parse_agreement_revoke(env.body)
        a = self.agreements.get(r.agreement)
        if a is None:
            raise UnknownEntry(f"seq {r.agreement} is not an agreement.approve")
        if self.principal_of(registry, signer.key_id) != a.owner:
            raise NotOwner(f"only the owner of agreement {r.agreement} revokes it")
        if a.revoked_seq is not None:
            raise StateConflict(f"agreement {r.agreement} was already revoked at seq {a.revoked_seq}")
        return r

    def _check_grant(self, seq: int, env: Envelope, signer: KeyRecord, registry: KeyRegistry) -> ConsentGrant:
        g = parse_grant(env.body)
        if signer.subject is None or signer.subject != g.subject:
            raise NotSubject("a consent grant is signed by the citizen it is about")
        self._live_department(registry, g.grantee, env.time, "consent.grant grantee")
        for name, fields in g.scope.items():
            ds = self.require_dataset(name)
            if not ds.dataset.personal:
                raise InvalidBody(f"dataset {name} holds no personal data: there is nothing to consent to")
            ds.dataset.require_fields(fields)
        return g

    def _check_grant_revoke(self, seq: int, env: Envelope, signer: KeyRecord, registry: KeyRegistry) -> Any:
        r = parse_grant_revoke(env.body)
        g = self._grant(r.grant)
        if g is None:
            raise UnknownEntry(f"seq {r.grant} is not a consent.grant")
        if signer.subject is None or signer.subject != g.grant.subject:
            raise NotSubject(f"only the subject of grant {r.grant} revokes it")
        if g.revoked_seq is not None:
            raise StateConflict(f"grant {r.grant} was already revoked at seq {g.revoked_seq}")
        return r

    def _check_decision(self, seq: int, env: Envelope, signer: KeyRecord, registry: KeyRegistry) -> DecisionEntry:
        e = parse_decision(env.body)
        earlier = self._requests.get(e.request)
        if earlier is not None:
            raise StateConflict(f"request {e.request} was already decided at seq {earlier}")
        for b in e.basis:
            if b >= seq:
                raise InvalidBody(f"access.decision basis {b} is not an earlier entry")
        ds = self.require_dataset(e.dataset)
        rec = self.require_record(e.dataset, e.record)
        ds.dataset.require_fields(e.fields)
        if e.subject != rec.subject:
            raise InvalidBody(f"access.decision subject is not the subject of record {e.record}")
        if e.record_seq != rec.seq:
            raise StateConflict(f"record {e.record} is at seq {rec.seq} now, not {e.record_seq}")
        if e.outcome == ALLOW:
            expected = decide(
                self,
                registry,
                requester=e.requester,
                dataset=e.dataset,
                record=e.record,
                fields=e.fields,
                purpose=e.purpose,
                at=env.time,
            )
            found = e.as_decision()
            if expected != found:
                if not expected.allowed:
                    detail = f"at {env.ts} it is a deny ({', '.join(expected.reasons)})"
                else:
                    detail = (
                        f"the allow rests on {expected.basis} with modes {expected.modes}, "
                        f"not {found.basis} with {found.modes}"
                    )
                raise DecisionMismatch(detail, expected=expected, found=found)
        return e

    def _check_release(self, seq: int, env: Envelope, signer: KeyRecord, registry: KeyRegistry) -> UsageRelease:
        r = parse_usage_release(env.body)
        d = self.decisions.get(r.decision)
        if d is None:
            raise UnknownEntry(f"seq {r.decision} is not an access.decision")
        if d.entry.outcome != ALLOW:
            raise StateConflict(f"decision {r.decision} is a deny: nothing may be released")
        if d.released_seq is not None:
            raise StateConflict(f"decision {r.decision} was already released at seq {d.released_seq}")
        if r.requester != d.entry.requester:
            raise InvalidBody(f"usage.release requester is not the requester of decision {r.decision}")
        if r.record_seq != d.entry.record_seq:
            raise InvalidBody(f"usage.release record_seq is not the record version of decision {r.decision}")
        at = env.time
        key = registry.keys.get(r.requester)
        if key is None or not key_valid_at(key, at):
            raise StateConflict(f"the requester's key {r.requester} is no longer valid at {env.ts}")
        agreement = self.agreements[d.entry.basis[0]]
        if agreement.status(at) != LIVE:
            raise StateConflict(f"agreement {agreement.seq} is {agreement.status(at)} at {env.ts}")
        if len(d.entry.basis) > 1:
            grant = self._grant(d.entry.basis[1])
            if grant is None:
                raise UnknownEntry(f"seq {d.entry.basis[1]} is not a consent.grant")
            if grant.revoked_seq is not None or not grant.grant.in_window(at):
                status = REVOKED if grant.revoked_seq is not None else EXPIRED
                raise StateConflict(f"consent grant {grant.seq} is {status} at {env.ts}")
        return r

    def _check_objection(self, seq: int, env: Envelope, signer: KeyRecord, registry: KeyRegistry) -> Objection:
        o = parse_objection(env.body)
        if signer.subject is None or signer.subject != o.subject:
            raise NotSubject("an objection is filed by the citizen it is about")
        ds = self.require_dataset(o.dataset)
        rec = self.require_record(o.dataset, o.record)
        if rec.subject != o.subject:
            raise NotSubject(f"record {o.record} is not about the objecting citizen")
        ds.dataset.require_fields(o.fields)
        return o

    def _check_resolution(self, seq: int, env: Envelope, signer: KeyRecord, registry: KeyRegistry) -> Any:
        r = parse_resolution(env.body)
        o = self.objections.get(r.objection)
        if o is None:
            raise UnknownEntry(f"seq {r.objection} is not an objection.file")
        if self.principal_of(registry, signer.key_id) != o.owner:
            raise NotOwner(f"only the owner of {o.objection.dataset} resolves objection {r.objection}")
        if o.resolved_seq is not None:
            raise StateConflict(f"objection {r.objection} was already resolved at seq {o.resolved_seq}")
        if r.correction is not None:
            same = self._is_commit_of(r.correction, o.objection.dataset, o.objection.record)
            if same is None:
                raise UnknownEntry(f"seq {r.correction} is not a record.commit")
            if not same or r.correction <= o.seq:
                raise InvalidBody(f"correction {r.correction} is not a later commit of the record objected to")
        return r

    # ---------------------------------------------------------------------------------------------
    # Effects, one per entry type
    # ---------------------------------------------------------------------------------------------

    def _apply_dataset(self, seq: int, env: Envelope, ds: Dataset, registry: KeyRegistry) -> None:
        owner = self.principal_of(registry, ds.owner)
        self.datasets[ds.dataset] = DatasetState(seq, ds, owner)
        _push(self._datasets_of_owner, owner, ds.dataset)

    def _apply_record(self, seq: int, env: Envelope, rc: RecordCommit, registry: KeyRegistry) -> None:
        self.commits[seq] = rc
        key = (rc.dataset, rc.record)
        latest = self.records.get(key)
        if latest is None:
            self.records[key] = RecordState(rc.dataset, rc.record, rc.subject, seq, rc.version, rc.commitment, [seq])
            _push(self._records_of_subject, rc.subject, key)
        else:
            latest.seq, latest.version, latest.commitment = seq, rc.version, rc.commitment
            latest.seqs.append(seq)

    def _apply_agreement(self, seq: int, env: Envelope, ag: Agreement, registry: KeyRegistry) -> None:
        owner = self.principal_of(registry, ag.owner)
        requester = self.principal_of(registry, ag.requester)
        state = AgreementState(seq, ag, owner, requester)
        self.agreements[seq] = state
        for name in ag.scope:
            _push(self._agreements_for, (requester, name), state)
        _push(self._agreements_of, owner, seq)
        if requester != owner:
            _push(self._agreements_of, requester, seq)

    def _apply_agreement_revoke(self, seq: int, env: Envelope, r: Any, registry: KeyRegistry) -> None:
        self.agreements[r.agreement].revoked_seq = seq

    def _apply_grant(self, seq: int, env: Envelope, g: ConsentGrant, registry: KeyRegistry) -> None:
        grantee = self.principal_of(registry, g.grantee)
        state = GrantState(seq, g, grantee)
        self.grants[seq] = state
        for name in g.scope:
            _push(self._grants_for, (g.subject, grantee, name), state)
        _push(self._grants_of_subject, g.subject, seq)
        _push(self._grants_of_grantee, grantee, seq)

    def _apply_grant_revoke(self, seq: int, env: Envelope, r: Any, registry: KeyRegistry) -> None:
        self._revoke_grant(r.grant, seq)

    def _apply_decision(self, seq: int, env: Envelope, e: DecisionEntry, registry: KeyRegistry) -> None:
        requester = self.principal_of(registry, e.requester)
        self.decisions[seq] = DecisionState(seq, e, requester, env.time)
        self._requests[e.request] = seq
        _push(self._decisions_of_subject, e.subject, seq)
        _push(self._decisions_of_requester, requester, seq)
        if e.outcome == ALLOW and len(e.basis) > 1:
            self._use_grant(e.basis[1])

    def _apply_release(self, seq: int, env: Envelope, r: UsageRelease, registry: KeyRegistry) -> None:
        d = self.decisions[r.decision]
        d.released_seq = seq
        self.releases[seq] = ReleaseState(seq, r, d.entry.subject, d.requester)
        _push(self._releases_of_subject, d.entry.subject, seq)
        _push(self._releases_of_requester, d.requester, seq)

    def _apply_objection(self, seq: int, env: Envelope, o: Objection, registry: KeyRegistry) -> None:
        owner = self.datasets[o.dataset].owner
        self.objections[seq] = ObjectionState(seq, o, owner)
        _push(self._objections_of_subject, o.subject, seq)
        _push(self._objections_of_owner, owner, seq)

    def _apply_resolution(self, seq: int, env: Envelope, r: Any, registry: KeyRegistry) -> None:
        o = self.objections[r.objection]
        o.resolved_seq, o.outcome, o.correction = seq, r.outcome, r.correction

    # ---------------------------------------------------------------------------------------------
    # Effects taken back (``undo``), one per entry type: each removes what its ``_apply_`` added
    # ---------------------------------------------------------------------------------------------

    def _undo_dataset(self, seq: int, env: Envelope, ds: Dataset, registry: KeyRegistry) -> None:
        state = self.datasets.pop(ds.dataset)
        _pop(self._datasets_of_owner, state.owner, ds.dataset)

    def _undo_record(self, seq: int, env: Envelope, rc: RecordCommit, registry: KeyRegistry) -> None:
        del self.commits[seq]
        key = (rc.dataset, rc.record)
        latest = self.records[key]
        if latest.seqs.pop() != seq:
            raise ValueError(f"record {rc.record}: seq {seq} is not its latest commit")
        if not latest.seqs:
            del self.records[key]
            _pop(self._records_of_subject, rc.subject, key)
            return
        before = latest.seqs[-1]
        prev = self.commits[before]
        latest.seq, latest.version, latest.commitment = before, prev.version, prev.commitment

    def _undo_agreement(self, seq: int, env: Envelope, ag: Agreement, registry: KeyRegistry) -> None:
        state = self.agreements.pop(seq)
        if state.requester != state.owner:
            _pop(self._agreements_of, state.requester, seq)
        _pop(self._agreements_of, state.owner, seq)
        for name in reversed(list(ag.scope)):
            _pop(self._agreements_for, (state.requester, name), state)

    def _undo_agreement_revoke(self, seq: int, env: Envelope, r: Any, registry: KeyRegistry) -> None:
        self.agreements[r.agreement].revoked_seq = None

    def _undo_grant(self, seq: int, env: Envelope, g: ConsentGrant, registry: KeyRegistry) -> None:
        state = self.grants.pop(seq)
        _pop(self._grants_of_grantee, state.grantee, seq)
        _pop(self._grants_of_subject, g.subject, seq)
        for name in reversed(list(g.scope)):
            _pop(self._grants_for, (g.subject, state.grantee, name), state)

    def _undo_grant_revoke(self, seq: int, env: Envelope, r: Any, registry: KeyRegistry) -> None:
        self.grants[r.grant].revoked_seq = None

    def _undo_decision(self, seq: int, env: Envelope, e: DecisionEntry, registry: KeyRegistry) -> None:
        if e.outcome == ALLOW and len(e.basis) > 1:
            self.grants[e.basis[1]].uses -= 1
        state = self.decisions.pop(seq)
        _pop(self._decisions_of_requester, state.requester, seq)
        _pop(self._decisions_of_subject, e.subject, seq)
        del self._requests[e.request]

    def _undo_release(self, seq: int, env: Envelope, r: UsageRelease, registry: KeyRegistry) -> None:
        state = self.releases.pop(seq)
        _pop(self._releases_of_requester, state.requester, seq)
        _pop(self._releases_of_subject, state.subject, seq)
        self.decisions[r.decision].released_seq = None

    def _undo_objection(self, seq: int, env: Envelope, o: Objection, registry: KeyRegistry) -> None:
        state = self.objections.pop(seq)
        _pop(self._objections_of_owner, state.owner, seq)
        _pop(self._objections_of_subject, o.subject, seq)

    def _undo_resolution(self, seq: int, env: Envelope, r: Any, registry: KeyRegistry) -> None:
        o = self.objections[r.objection]
        o.resolved_seq = o.outcome = o.correction = None


_PARSERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "dataset.register": parse_dataset,
    "record.commit": parse_record_commit,
    "agreement.approve": parse_agreement,
    "agreement.revoke": parse_agreement_revoke,
    "consent.grant": parse_grant,
    "consent.revoke": parse_grant_revoke,
    "access.decision": parse_decision,
    "usage.release": parse_usage_release,
    "objection.file": parse_objection,
    "objection.resolve": parse_resolution,
}
_CHECKS: dict[str, Check] = {
    "dataset.register": ConsentState._check_dataset,
    "record.commit": ConsentState._check_record,
    "agreement.approve": ConsentState._check_agreement,
    "agreement.revoke": ConsentState._check_agreement_revoke,
    "consent.grant": ConsentState._check_grant,
    "consent.revoke": ConsentState._check_grant_revoke,
    "access.decision": ConsentState._check_decision,
    "usage.release": ConsentState._check_release,
    "objection.file": ConsentState._check_objection,
    "objection.resolve": ConsentState._check_resolution,
}
_APPLIES: dict[str, Apply] = {
    "dataset.register": ConsentState._apply_dataset,
    "record.commit": ConsentState._apply_record,
    "agreement.approve": ConsentState._apply_agreement,
    "agreement.revoke": ConsentState._apply_agreement_revoke,
    "consent.grant": ConsentState._apply_grant,
    "consent.revoke": ConsentState._apply_grant_revoke,
    "access.decision": ConsentState._apply_decision,
    "usage.release": ConsentState._apply_release,
    "objection.file": ConsentState._apply_objection,
    "objection.resolve": ConsentState._apply_resolution,
}

_UNDOS: dict[str, Apply] = {
    "dataset.register": ConsentState._undo_dataset,
    "record.commit": ConsentState._undo_record,
    "agreement.approve": ConsentState._undo_agreement,
    "agreement.revoke": ConsentState._undo_agreement_revoke,
    "consent.grant": ConsentState._undo_grant,
    "consent.revoke": ConsentState._undo_grant_revoke,
    "access.decision": ConsentState._undo_decision,
    "usage.release": ConsentState._undo_release,
    "objection.file": ConsentState._undo_objection,
    "objection.resolve": ConsentState._undo_resolution,
}

CONSENT_TYPES = frozenset(_CHECKS)


def replay_consent(entries: Sequence[tuple[int, Envelope]]) -> tuple[KeyRegistry, ConsentState]:
    """Build the registry and consent state from ``(seq, envelope)`` pairs, checking each (tests and tools)."""
    registry = KeyRegistry()
    state = ConsentState()
    for seq, env in entries:
        signer = registry.check(seq, env)
        state.check(seq, env, signer, registry)
        registry.apply(seq, env)
        state.apply(seq, env, signer, registry)
    return registry, state
