"""Build realistic ledgers for the audit tests and the verification benchmark, through the real sequencer.

Departments register datasets and commit records, citizens grant consent; new citizens keep registering
along the way (so some entries are signed by keys registered moments before), one department key is
rotated and one citizen key revoked. Every entry passes the sequencer's key and consent checks.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from typing import Any

import nacl.public
import nacl.signing

from api.node import Node, identity_body
from keys.keystore import StoredKey
from ledger.envelope import sign_envelope
from ledger.errors import LedgerError


def seeded_key(name: str, role: str, seed: int) -> StoredKey:
    """A deterministic key pair named ``name``."""
    secret = hashlib.sha256(f"shulian audit test {seed} {name}".encode()).digest()
    x25519 = None
    if role == "department":
        x25519 = nacl.public.PrivateKey(hashlib.sha256(secret + b"x25519").digest())
    return StoredKey(name, nacl.signing.SigningKey(secret), x25519, role)


def register_body(key: StoredKey, role: str) -> dict[str, Any]:
    extra: dict[str, Any] = {"subject": subject_of(key)} if role == "citizen" else {}
    return identity_body(key, role, f"{role} {key.name}", **extra)


FIELDS = [("name", "high"), ("address", "medium"), ("phone", "medium"), ("note", "low")]


def subject_of(key: StoredKey) -> str:
    return hashlib.sha256(b"subject " + key.key_id.encode()).hexdigest()


class LedgerFactory:
    """Signs a realistic stream of consent-valid entries for ``node``'s ledger and appends it in batches."""

    def __init__(self, node: Node, *, seed: int = 1, departments: int = 4, citizens: int = 30) -> None:
        self.node = node
        self.seed = seed
        self.rng = random.Random(seed)
        self.admin = node.local_key("admin")
        self.departments = [seeded_key(f"dept{i}", "department", seed) for i in range(departments)]
        self.datasets = [f"d{i}.people" for i in range(departments)]
        self.citizens = [seeded_key(f"citizen{i}", "citizen", seed) for i in range(citizens)]
        self.citizen_count = citizens
        self.counter = 0
        self._rotated = False
        self._revoked = False

    def _register(self, key: StoredKey, role: str) -> bytes:
        return sign_envelope(self.admin.signing, "identity.register", register_body(key, role))

    def opening(self) -> list[bytes]:
        """Register the departments and the first citizens."""
        return [self._register(k, "department") for k in self.departments] + [
            self._register(k, "citizen") for k in self.citizens
        ]

    def catalogue(self) -> list[bytes]:
        """Each department registers one personal dataset."""
        out = []
        for dept, name in zip(self.departments, self.datasets, strict=True):
            body = {
                "dataset": name,
                "owner": dept.key_id,
                "title": f"户籍人口 {name}",
                "fields": [{"name": n, "sensitivity": s} for n, s in FIELDS],
                "level": "重要",
                "personal": True,
                "update_frequency": "daily",
            }
            out.append(sign_envelope(dept.signing, "dataset.register", body))
        return out

    def _entry(self) -> Iterator[bytes]:
        """One or two leaves: a record or a consent grant, sometimes a new citizen and its first grant."""
        self.counter += 1
        i = self.counter
        roll = self.rng.random()
        if roll < 0.02:  # a new citizen registers and at once grants consent
            self.citizen_count += 1
            key = seeded_key(f"citizen{self.citizen_count}", "citizen", self.seed)
            self.citizens.append(key)
            yield self._register(key, "citizen")
            yield self._grant(key, i)
        elif roll < 0.55:
            owner = self.rng.randrange(len(self.departments))
            body = {
                "dataset": self.datasets[owner],
                "record": f"rec-{self.seed}-{i}",
                "subject": subject_of(self.rng.choice(self.citizens)),
                "commitment": base64.b64encode(hashlib.sha256(f"record {i}".encode()).digest()).decode(),
                "version": 1,
                "replaces": None,
            }
            yield sign_envelope(self.departments[owner].signing, "record.commit", body)
        else:
            yield self._grant(self.rng.choice(self.citizens), i)

    def _grant(self, citizen: StoredKey, i: int) -> bytes:
        body = {
            "subject": subject_of(citizen),
            "grantee": self.rng.choice(self.departments).key_id,
            "scope": {self.rng.choice(self.datasets): ["name", "address", "phone"]},
            "purpose": "社会保障资格审核",
            "valid_from": "2026-01-01T00:00:00.000000Z",
            "valid_until": "2030-01-01T00:00:00.000000Z",
            "max_uses": i % 7 or None,
        }
        return sign_envelope(citizen.signing, "consent.grant", body)

    def key_changes(self) -> list[bytes]:
        """Rotate the first department's key, revoke the first citizen's (once each)."""
        out: list[bytes] = []
        if not self._rotated and self.departments:
            old = self.departments[0]
            new = seeded_key(f"{old.name}-r", "department", self.seed)
            body = {**register_body(new, "department"), "replaces": old.key_id}
            out.append(sign_envelope(old.signing, "identity.rotate", body))
            self.departments[0] = new
            self._rotated = True
        if not self._revoked and len(self.citizens) > 1:
            gone = self.citizens.pop(0)
            out.append(sign_envelope(self.admin.signing, "identity.revoke", {"key_id": gone.key_id}))
            self._revoked = True
        return out

    def leaves(self, count: int) -> list[bytes]:
        """At least ``count`` new leaves (one more when the last is a registration and its first act)."""
        out: list[bytes] = []
        while len(out) < count:
            out.extend(self._entry())
        return out

    def append(self, leaves: list[bytes]) -> None:
        """Append ``leaves`` as one group commit (one block); every one must be accepted."""
        for result in self.node.sequencer.append_many(leaves):
            if isinstance(result, LedgerError):
                raise result

    def build(self, entries: int, *, batch: int = 500) -> int:
        """Append about ``entries`` entries after the opening, ``batch`` per block; return the tree size."""
        self.append(self.opening())
        self.append(self.catalogue())
        done = 0
        while done < entries:
            changes = self.key_changes() if done == 0 else []
            leaves = changes + self.leaves(min(batch, entries - done) - len(changes))
            self.append(leaves)
            done += len(leaves)
        return self.node.reader.size()
