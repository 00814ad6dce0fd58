"""The consent state packed for replaying a whole ledger (``shulian verify``): the same rules, less memory.

``ConsentState`` keeps every record, commit and grant as Python objects, about a kilobyte each: right for a
node that serves them, over a gigabyte for a verifier replaying 10^6 entries. ``CompactConsentState``
inherits every check and effect of ``ConsentState`` and only stores the two kinds that grow with the
ledger differently:

- records: an open-addressing table keyed by a 128-bit BLAKE2b digest of (dataset, record) (a collision
  would take ~2**64 work, the strength of the key ids), holding each record's latest commit seq, version
  and subject; for the objection rules, the earlier commits of records that have several, and one bit
  per seq saying whether it is a record.commit;
- grants: parallel arrays in seq order (subject, grantee, scope and purpose interned as small ints,
  validity as epoch microseconds, the use limit), uses and revocations only where there are some, each
  subject's grants as an array of positions.

A grant read back (``grants``, ``grants_for``) is a real ``GrantState`` rebuilt exactly from those values,
so ``decide`` and the consent index comparison see what ``ConsentState`` would give. Records are read back
as ``RecordHead`` (what the rules read); the commitments and commit histories the API serves are not
kept, so the read helpers that need them raise ``NotImplementedError`` here.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from consent.grant import ConsentGrant
from consent.record import RecordCommit
from consent.state import ConsentState, GrantState, RecordHead, RecordState
from keys.registry import KeyRegistry
from ledger.envelope import Envelope

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_NONE = -1  # ``None`` in an array of non-negative values
_DIGEST = 16


def micros(at: datetime) -> int:
    """An aware datetime as microseconds since 1970 (exact)."""
    return (at - _EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    """The aware UTC datetime ``micros`` gave ``value`` for."""
    return _EPOCH + timedelta(microseconds=value)


class Interner:
    """Small ints for repeated values (subjects, key ids, purposes, scopes), and back."""

    __slots__ = ("_ids", "values")

    def __init__(self) -> None:
        self._ids: dict[Any, int] = {}
        self.values: list[Any] = []

    def id(self, value: Any) -> int:
        found = self._ids.get(value)
        if found is None:
            found = self._ids[value] = len(self.values)
            self.values.append(value)
        return found

    def find(self, value: Any) -> int | None:
        return self._ids.get(value)

    def __len__(self) -> int:
        return len(self.values)


def record_digest(dataset: str, record: str) -> bytes:
    """The 128-bit key of a record: BLAKE2b over the two ids, the first length-prefixed."""
    head = dataset.encode()
    return hashlib.blake2b(len(head).to_bytes(4, "big") + head + record.encode(), digest_size=_DIGEST).digest()


class DigestTable:
    """An open-addressing hash table from 16-byte digests to positions 0, 1, 2, … in insertion order.

    About 20 bytes a slot, kept at most 60 % full: a fraction of what a dict of ``bytes`` keys takes.
    """

    __slots__ = ("_keys", "_mask", "_slots", "count")

    def __init__(self, capacity: int = 1 << 12) -> None:
        self._mask = capacity - 1
        self._keys = bytearray(capacity * _DIGEST)
        self._slots = array("i", [_NONE]) * capacity
        self.count = 0

    def _probe(self, digest: bytes) -> int:
        """The slot holding ``digest``, or the free slot where it would go."""
        mask, keys, slots = self._mask, self._keys, self._slots
        i = int.from_bytes(digest[:8], "little") & mask
        while slots[i] != _NONE:
            at = i * _DIGEST
            if keys[at : at + _DIGEST] == digest:
                return i
            i = (i + 1) & mask
        return i

    def get(self, digest: bytes) -> int | None:
        """The position of ``digest``, or None."""
        pos = self._slots[self._probe(digest)]
        return None if pos == _NONE else pos

    def add(self, digest: bytes) -> int:
        """Insert a digest not yet present; return its position."""
        if (self.count + 1) * 5 > len(self._slots) * 3:
            self._grow()
        i = self._probe(digest)
        if self._slots[i] != _NONE:
            raise ValueError("digest already present")
        pos = self.count
        self._slots[i] = pos
        self._keys[i * _DIGEST : (i + 1) * _DIGEST] = digest
        self.count += 1
        return pos

    def _grow(self) -> None:
        old_keys, old_slots = self._keys, self._slots
        capacity = len(old_slots) * 2
        self._mask = capacity - 1
        self._keys = bytearray(capacity * _DIGEST)
        self._slots = array("i", [_NONE]) * capacity
        keys, slots, mask = self._keys, self._slots, self._mask
        for j, pos in enumerate(old_slots):
            if pos == _NONE:
                continue
            digest = old_keys[j * _DIGEST : (j + 1) * _DIGEST]
            i = int.from_bytes(digest[:8], "little") & mask
            while slots[i] != _NONE:
                i = (i + 1) & mask
            slots[i] = pos
            keys[i * _DIGEST : (i + 1) * _DIGEST] = digest


class PackedGrants(Mapping[int, GrantState]):
    """Grants by seq, in parallel arrays; each look-up rebuilds an exact ``GrantState``."""

    def __init__(self) -> None:
        self.seqs = array("q")
        self.subject = array("i")
        self.grantee = array("i")  # the body's grantee key id
        self.principal_of: dict[int, int] = {}  # grantee key id → its principal (fixed once registered)
        self.scope = array("i")
        self.purpose = array("i")
        self.valid_from = array("q")
        self.valid_until = array("q")
        self.max_uses = array("i")
        self.uses: dict[int, int] = {}  # by position, where not 0 (few grants are used or revoked)
        self.revoked: dict[int, int] = {}  # by position: the revoking seq
        self.subjects = Interner()
        self.key_ids = Interner()
        self.purposes = Interner()
        self.scopes = Interner()  # canonical scope → id; values are the scope dicts
        self.of_subject: dict[int, array[int]] = {}

    def add(self, seq: int, g: ConsentGrant, principal: str) -> None:
        if self.seqs and seq <= self.seqs[-1]:
            raise ValueError(f"grant seq {seq} is not after {self.seqs[-1]}")
        pos = len(self.seqs)
        subject = self.subjects.id(g.subject)
        self.seqs.append(seq)
        self.subject.append(subject)
        grantee = self.key_ids.id(g.grantee)
        self.grantee.append(grantee)
        self.principal_of[grantee] = self.key_ids.id(principal)
        key = tuple(g.scope.items())
        scope = self.scopes.find(key)
        if scope is None:
            scope = self.scopes.id(key)
        self.scope.append(scope)
        self.purpose.append(self.purposes.id(g.purpose))
        self.valid_from.append(micros(g.valid_from))
        self.valid_until.append(micros(g.valid_until))
        self.max_uses.append(_NONE if g.max_uses is None else g.max_uses)
        mine = self.of_subject.get(subject)
        if mine is None:
            mine = self.of_subject[subject] = array("i")
        mine.append(pos)

    def position(self, seq: int) -> int | None:
        i = bisect.bisect_left(self.seqs, seq)
        return i if i < len(self.seqs) and self.seqs[i] == seq else None

    def state(self, pos: int) -> GrantState:
        """The ``GrantState`` at position ``pos``, rebuilt."""
        max_uses = self.max_uses[pos]
        grantee = self.grantee[pos]
        grant = ConsentGrant(
            subject=self.subjects.values[self.subject[pos]],
            grantee=self.key_ids.values[grantee],
            scope=dict(self.scopes.values[self.scope[pos]]),
            purpose=self.purposes.values[self.purpose[pos]],
            valid_from=from_micros(self.valid_from[pos]),
            valid_until=from_micros(self.valid_until[pos]),
            max_uses=None if max_uses == _NONE else max_uses,
        )
        return GrantState(
            self.seqs[pos],
            grant,
            self.key_ids.values[self.principal_of[grantee]],
            self.uses.get(pos, 0),
            self.revoked.get(pos),
        )

    def get_position(self, seq: int) -> int:
        pos = self.position(seq)
        if pos is None:
            raise KeyError(seq)
        return pos

    def __getitem__(self, seq: int) -> GrantState:
        return self.state(self.get_position(seq))

    def __iter__(self) -> Iterator[int]:
        return iter(self.seqs)

    def __len__(self) -> int:
        return len(self.seqs)

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and self.position(seq) is not None

    def for_subject(self, subject: str, principal: str, dataset: str) -> list[GrantState]:
        """Grants by ``subject`` to grantee principal ``principal`` whose scope has ``dataset``, in seq order."""
        sid, pid = self.subjects.find(subject), self.key_ids.find(principal)
        if sid is None or pid is None:
            return []
        scopes, principal_of = self.scopes.values, self.principal_of
        out = []
        for pos in self.of_subject.get(sid, ()):
            if principal_of[self.grantee[pos]] == pid and any(name == dataset for name, _ in scopes[self.scope[pos]]):
                out.append(self.state(pos))
        return out


class CompactConsentState(ConsentState):
    """``ConsentState``'s rules over packed records and grants (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.packed_grants = PackedGrants()
        self.grants = self.packed_grants  # type: ignore[assignment]  # a read-only Mapping of rebuilt states
        self._record_table = DigestTable()
        self._record_seq = array("q")
        self._record_version = array("i")
        self._record_subject = array("i")
        self._earlier: dict[int, list[int]] = {}  # by record position: its commits before the latest
        self._commit_bits = bytearray()  # bit ``seq`` set: the entry at ``seq`` is a record.commit

    def undo(self, seq: int, env: Envelope, registry: KeyRegistry) -> None:
        raise NotImplementedError("a compact consent state is replayed forward only (use ConsentState)")

    # storage the rules read and change
    def _record(self, dataset: str, record: str) -> RecordHead | None:
        pos = self._record_table.get(record_digest(dataset, record))
        if pos is None:
            return None
        subject = self.packed_grants.subjects.values[self._record_subject[pos]]
        return RecordHead(dataset, record, subject, self._record_seq[pos], self._record_version[pos])

    def _grant(self, seq: int) -> GrantState | None:
        pos = self.packed_grants.position(seq)
        return None if pos is None else self.packed_grants.state(pos)

    def _is_commit_of(self, seq: int, dataset: str, record: str) -> bool | None:
        byte = seq >> 3
        if seq < 0 or byte >= len(self._commit_bits) or not self._commit_bits[byte] >> (seq & 7) & 1:
            return None
        pos = self._record_table.get(record_digest(dataset, record))
        return pos is not None and (self._record_seq[pos] == seq or seq in self._earlier.get(pos, ()))

    def _use_grant(self, seq: int) -> None:
        uses, pos = self.packed_grants.uses, self.packed_grants.get_position(seq)
        uses[pos] = uses.get(pos, 0) + 1

    def _revoke_grant(self, seq: int, revoked_seq: int) -> None:
        self.packed_grants.revoked[self.packed_grants.get_position(seq)] = revoked_seq

    def _apply_record(self, seq: int, env: Envelope, rc: RecordCommit, registry: KeyRegistry) -> None:
        digest = record_digest(rc.dataset, rc.record)
        pos = self._record_table.get(digest)
        if pos is None:
            pos = self._record_table.add(digest)
            self._record_seq.append(seq)
            self._record_version.append(rc.version)
            self._record_subject.append(self.packed_grants.subjects.id(rc.subject))
        else:
            self._earlier.setdefault(pos, []).append(self._record_seq[pos])
            self._record_seq[pos] = seq
            self._record_version[pos] = rc.version
        bits = self._commit_bits
        if len(bits) <= seq >> 3:
            bits.extend(bytes((seq >> 3) + 1 - len(bits)))
        bits[seq >> 3] |= 1 << (seq & 7)

    def _apply_grant(self, seq: int, env: Envelope, g: ConsentGrant, registry: KeyRegistry) -> None:
        self.packed_grants.add(seq, g, self.principal_of(registry, g.grantee))

    # read helpers
    def grant_seqs(self) -> Sequence[int]:
        return self.packed_grants.seqs  # appended in seq order: ascending, and no list of a million ints

    def grants_for(self, subject: str, grantee: str, dataset: str) -> list[GrantState]:
        return self.packed_grants.for_subject(subject, grantee, dataset)

    def grants_of_subject(self, subject: str) -> list[int]:
        sid = self.packed_grants.subjects.find(subject)
        seqs = self.packed_grants.seqs
        return [] if sid is None else [seqs[p] for p in self.packed_grants.of_subject.get(sid, ())]

    def grants_of_grantee(self, grantee: str) -> list[int]:
        pid = self.packed_grants.key_ids.find(grantee)
        g = self.packed_grants
        mine = {kid for kid, principal in g.principal_of.items() if principal == pid}
        return [] if pid is None else [s for s, kid in zip(g.seqs, g.grantee, strict=True) if kid in mine]

    def records_of_subject(self, subject: str) -> list[RecordState]:
        raise NotImplementedError("a compact consent state keeps no record histories (use ConsentState)")

    def latest_commit(self, dataset: str, record: str) -> RecordState | None:
        raise NotImplementedError("a compact consent state keeps no commitments (use ConsentState)")

    def commit(self, seq: int) -> RecordCommit | None:
        raise NotImplementedError("a compact consent state keeps no commit bodies (use ConsentState)")

    def copy(self) -> CompactConsentState:
        out = super().copy()
        assert isinstance(out, CompactConsentState)
        out.grants = out.packed_grants  # type: ignore[assignment]
        return out
