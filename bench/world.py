"""A deterministic synthetic world (departments, citizens, datasets) and its signed envelopes.

Keys derive from fixed seeds so worker processes can sign any slice of the entry stream on their
own; only the admin and service keys come from the node's keystore and are passed in as seeds.
Every envelope is made by ``ledger.envelope.sign_envelope``: real canonical bytes, real signatures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import nacl.public
import nacl.signing

from keys.keyid import key_id
from ledger.envelope import sign_envelope
from ledger.timefmt import format_ts, now_ts

FIELDS = [
    ("name", "medium"),
    ("id_last4", "high"),
    ("address", "medium"),
    ("household", "medium"),
    ("insurance_status", "low"),
    ("income_band", "high"),
]
TITLES = ["户籍人口基本信息", "社会保险参保信息", "不动产登记信息", "企业登记信息", "医疗保障信息", "公积金缴存信息"]
PURPOSES = ["社保资格核验", "公积金贷款审批", "入学资格审核", "低保资格认定", "不动产交易核验"]
LEVELS = ["一般", "重要", "核心"]
GRANTS_END = datetime(2031, 1, 1, tzinfo=UTC)


def _seed(*parts: object) -> bytes:
    return hashlib.sha256("/".join(str(p) for p in ("shulian-bench", *parts)).encode()).digest()


@dataclass(frozen=True)
class World:
    """Sizes of the world and the seeds of the two keys the node owns."""

    admin_seed: bytes
    service_seed: bytes
    departments: int = 40
    citizens: int = 5000
    datasets_per_department: int = 2

    @property
    def setup_size(self) -> int:
        """Entries that register the world: departments, citizens, datasets."""
        return self.departments + self.citizens + self.departments * self.datasets_per_department

    def admin(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.admin_seed)

    def department(self, i: int) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(_seed("department", i))

    def citizen(self, i: int) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(_seed("citizen", i))

    @staticmethod
    def subject(i: int) -> str:
        """The pseudonymous subject id (``keys.subject`` form: 'sub:' + hex HMAC-SHA256)."""
        return "sub:" + hmac.new(b"bench-subject-secret", f"citizen-{i:07d}".encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def dataset(dept: int, j: int) -> str:
        return f"dept{dept:03d}.set_{j}"


def _pub(key: nacl.signing.SigningKey) -> str:
    return base64.b64encode(bytes(key.verify_key)).decode()


class _Signer:
    """Signs entry ``i`` of the stream for a world; caches derived keys (cheap to rebuild)."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.admin = world.admin()
        self.departments = [world.department(i) for i in range(world.departments)]
        self.dept_ids = [key_id(bytes(k.verify_key)) for k in self.departments]
        self._citizens: dict[int, nacl.signing.SigningKey] = {}

    def citizen(self, i: int) -> nacl.signing.SigningKey:
        key = self._citizens.get(i)
        if key is None:
            key = self._citizens[i] = self.w.citizen(i)
        return key

    def register_department(self, d: int, ts: str) -> bytes:
        key = self.departments[d]
        x = nacl.public.PrivateKey(_seed("department-x25519", d))
        body = {
            "key_id": self.dept_ids[d],
            "role": "department",
            "name": f"第{d + 1}委办局",
            "ed25519": _pub(key),
            "x25519": base64.b64encode(bytes(x.public_key)).decode(),
        }
        return sign_envelope(self.admin, "identity.register", body, ts=ts)

    def register_citizen(self, c: int, ts: str) -> bytes:
        key = self.citizen(c)
        body = {
            "key_id": key_id(bytes(key.verify_key)),
            "role": "citizen",
            "name": f"公民{c:07d}",
            "ed25519": _pub(key),
            "subject": self.w.subject(c),
        }
        return sign_envelope(self.admin, "identity.register", body, ts=ts)

    def register_dataset(self, d: int, j: int, ts: str) -> bytes:
        n = 3 + (d + j) % 4
        body = {
            "dataset": self.w.dataset(d, j),
            "owner": self.dept_ids[d],
            "title": TITLES[(d + j) % len(TITLES)],
            "fields": [{"name": f, "sensitivity": s} for f, s in FIELDS[:n]],
            "level": LEVELS[(d * 3 + j) % len(LEVELS)],
            "personal": True,
            "update_frequency": "daily",
        }
        return sign_envelope(self.departments[d], "dataset.register", body, ts=ts)

    def setup(self, i: int, ts: str) -> bytes:
        """Entry ``i`` of the setup stream (departments, then citizens, then datasets)."""
        w = self.w
        if i < w.departments:
            return self.register_department(i, ts)
        i -= w.departments
        if i < w.citizens:
            return self.register_citizen(i, ts)
        i -= w.citizens
        return self.register_dataset(i // w.datasets_per_department, i % w.datasets_per_department, ts)

    def traffic(self, i: int, ts: str) -> bytes:
        """Entry ``i`` of the steady stream: record commits and consent grants (every actor registered)."""
        w = self.w
        h = int.from_bytes(hashlib.blake2b(i.to_bytes(8, "big"), digest_size=8).digest(), "big")
        d = h % w.departments
        j = (h >> 8) % w.datasets_per_department
        c = (h >> 16) % w.citizens
        if i % 2 == 0:
            body: dict[str, Any] = {
                "dataset": w.dataset(d, j),
                "record": f"rec-{i:09d}",
                "subject": w.subject(c),
                "commitment": base64.b64encode(hashlib.sha256(b"record" + i.to_bytes(8, "big")).digest()).decode(),
                "version": 1,
                "replaces": None,
            }
            return sign_envelope(self.departments[d], "record.commit", body, ts=ts)
        n = 2 + (h >> 24) % 2  # every dataset has at least three fields
        body = {
            "subject": w.subject(c),
            "grantee": self.dept_ids[(d + 1) % w.departments],
            "scope": {w.dataset(d, j): [f for f, _ in FIELDS[:n]]},
            "purpose": PURPOSES[(h >> 32) % len(PURPOSES)],
            "valid_from": ts,
            "valid_until": format_ts(GRANTS_END + timedelta(seconds=i)),  # distinct grants, distinct leaves
            "max_uses": 1 + (h >> 40) % 20,
        }
        return sign_envelope(self.citizen(c), "consent.grant", body, ts=ts)

    def new_citizens(self, start: int, count: int, ts: str) -> list[bytes]:
        return [self.register_citizen(c, ts) for c in range(start, start + count)]


_signer: _Signer | None = None


def _init_worker(world: World) -> None:
    global _signer
    _signer = _Signer(world)


def _sign_chunk(args: tuple[str, int, int, str | None]) -> list[bytes]:
    kind, start, count, ts = args
    assert _signer is not None
    ts = ts or now_ts()  # None: the time of signing (the ledger takes entries within 5 minutes of it)
    if kind == "setup":
        return [_signer.setup(i, ts) for i in range(start, start + count)]
    if kind == "citizens":
        return _signer.new_citizens(start, count, ts)
    return [_signer.traffic(i, ts) for i in range(start, start + count)]


class SigningPool:
    """Worker processes that sign slices of the entry stream (PyNaCl signing costs ~15 µs each)."""

    def __init__(self, world: World, workers: int | None = None) -> None:
        self.world = world
        self.workers = workers or os.cpu_count() or 2
        self.pool = ProcessPoolExecutor(self.workers, initializer=_init_worker, initargs=(world,))

    def close(self) -> None:
        self.pool.shutdown()

    def sign(self, kind: str, start: int, count: int, *, ts: str | None = None, piece: int = 2000) -> list[bytes]:
        """Sign ``count`` entries of stream ``kind`` from ``start``, all with time ``ts`` (default now)."""
        return [leaf for part in self.sign_async(kind, start, count, ts=ts, piece=piece) for leaf in part]

    def sign_async(
        self, kind: str, start: int, count: int, *, ts: str | None = None, piece: int = 2000
    ) -> Iterator[list[bytes]]:
        """Like ``sign`` but yields the signed pieces in order as they finish (submitted at once)."""
        ts = ts or now_ts()
        jobs = [(kind, s, min(piece, start + count - s), ts) for s in range(start, start + count, piece)]
        return self.pool.map(_sign_chunk, jobs)

    def sign_stream(
        self, kind: str, start: int, count: int, *, piece: int = 2000, window: int = 16
    ) -> Iterator[list[bytes]]:
        """Pieces of stream ``kind`` in order, each timed when signed, at most ``window`` pieces ahead."""
        jobs = [(kind, s, min(piece, start + count - s), None) for s in range(start, start + count, piece)]
        ahead: deque[Future[list[bytes]]] = deque()
        for job in jobs:
            ahead.append(self.pool.submit(_sign_chunk, job))
            if len(ahead) >= window:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
