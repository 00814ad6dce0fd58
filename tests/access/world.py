"""A small city for the access tests, built through the real service: keys, datasets, records, agreements.

``build_world`` takes an initialised node and a way to make SDK clients (over a real uvicorn server, or
in-process through Starlette's TestClient) and returns a ``World``: an admin who registered three
departments (with X25519 keys), two citizens (with pseudonymous subjects) and an auditor; two datasets;
records committed through the SDK; and two agreements from 民政局 to 公积金中心, one that needs the
subject's consent and one (履行职责) that does not. 人社局 is a department that is party to nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from api import tables
from api.client import ShulianClient
from api.node import Node, identity_body
from keys.keystore import StoredKey
from keys.subject import id_check_digit, subject_id, subject_secret
from ledger import schema
from ledger.envelope import parse_envelope, sign_envelope
from ledger.store import Store
from ledger.timefmt import format_ts, now

ClientFactory = Callable[[StoredKey], ShulianClient]

DIBAO = "mzj.dibao"
DEPOSIT = "gjj.deposit"
CONSENT_PURPOSE = "住房保障资格审核"
DUTY_PURPOSE = "公积金提取审核"
# The scope of the consent agreement: which fields 公积金中心 gets, and how.
CONSENT_SCOPE = {"name": "masked", "id_number": "masked", "phone": "masked", "monthly_allowance": "full"}
DUTY_SCOPE = {"household_size": "full", "monthly_allowance": "full"}
DIBAO_FIELDS = (
    ("name", "high"),
    ("id_number", "high"),
    ("household_size", "medium"),
    ("monthly_allowance", "medium"),
    ("address", "high"),
    ("phone", "high"),
)
DEPOSIT_FIELDS = (("name", "high"), ("id_number", "high"), ("balance", "high"))


def id_number(birth: str, serial: str) -> str:
    """A checksum-valid resident identity number (杭州西湖区) born on ``birth`` (YYYYMMDD)."""
    first17 = f"330106{birth}{serial}"
    return first17 + id_check_digit(first17)


@dataclass
class Citizen:
    key: StoredKey
    subject: str
    id_number: str
    name: str
    phone: str
    client: ShulianClient


@dataclass
class Department:
    key: StoredKey
    name: str
    client: ShulianClient

    @property
    def key_id(self) -> str:
        return self.key.key_id


@dataclass
class World:
    node: Node
    make_client: ClientFactory
    admin: StoredKey
    auditor: ShulianClient
    depts: dict[str, Department] = field(default_factory=dict)
    citizens: dict[str, Citizen] = field(default_factory=dict)
    datasets: dict[str, int] = field(default_factory=dict)  # dataset id -> seq of its registration
    records: dict[str, int] = field(default_factory=dict)  # record id -> seq of its commit
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # record id -> its values
    consent_agreement: int = -1
    duty_agreement: int = -1
    clients: list[ShulianClient] = field(default_factory=list)

    # -- reading the ledger directly (the tests' own view, not the API's) ---------------------------
    def size(self) -> int:
        return self.node.reader.size()

    def leaves(self) -> list[bytes]:
        with self.node.store.reader() as conn:
            return [bytes(leaf) for _, leaf in Store.entries_between(conn, 0, self.size())]

    def entry(self, seq: int) -> dict[str, Any]:
        """Entry ``seq`` as an auditor reads it over the API (inclusion proof checked by the SDK)."""
        return self.auditor.entry(seq)

    def vault_rows(self) -> int:
        with self.node.store.reader() as conn:
            return int(conn.execute(select(func.count()).select_from(tables.vault_records)).scalar_one())

    def nonce_rows(self) -> int:
        with self.node.store.reader() as conn:
            return int(conn.execute(select(func.count()).select_from(tables.request_nonces)).scalar_one())

    def types_from(self, start: int) -> list[str]:
        with self.node.store.reader() as conn:
            rows = conn.execute(select(schema.entries.c.type).where(schema.entries.c.seq >= start)).all()
        return [r[0] for r in rows]

    # -- building --------------------------------------------------------------------------------
    def client(self, key: StoredKey) -> ShulianClient:
        c = self.make_client(key)
        self.clients.append(c)
        return c

    def register(self, key: StoredKey, role: str, name: str, **extra: Any) -> int:
        """The admin registers ``key`` (appended straight to the node, as ``shulian`` would)."""
        leaf = sign_envelope(self.admin.signing, "identity.register", identity_body(key, role, name, **extra))
        return self.node.append(leaf).seq

    def add_department(self, label: str, name: str) -> Department:
        key = StoredKey.generate(label, x25519=True, role="department")
        self.register(key, "department", name)
        dept = Department(key, name, self.client(key))
        self.depts[label] = dept
        return dept

    def add_citizen(self, label: str, *, name: str, birth: str, serial: str, phone: str) -> Citizen:
        number = id_number(birth, serial)
        subject = subject_id(number, subject_secret(self.node.home / "subject.secret"))
        key = StoredKey.generate(label, role="citizen")
        self.register(key, "citizen", f"市民{label}", subject=subject)
        citizen = Citizen(key, subject, number, name, phone, self.client(key))
        self.citizens[label] = citizen
        return citizen

    def register_dataset(self, owner: str, dataset: str, title: str, fields: tuple[tuple[str, str], ...]) -> int:
        body = {
            "dataset": dataset,
            "owner": self.depts[owner].key_id,
            "title": title,
            "fields": [{"name": n, "sensitivity": s} for n, s in fields],
            "level": "重要",
            "personal": True,
            "update_frequency": "每月",
        }
        seq = int(self.depts[owner].client.register_dataset(body)["seq"])
        self.datasets[dataset] = seq
        return seq

    def commit_dibao(self, record: str, citizen: str, *, household_size: int = 3, allowance: int = 860) -> int:
        c = self.citizens[citizen]
        values: dict[str, Any] = {
            "name": c.name,
            "id_number": c.id_number,
            "household_size": household_size,
            "monthly_allowance": allowance,
            "address": "浙江省杭州市西湖区文三路100号",
            "phone": c.phone,
        }
        out = self.depts["mzj"].client.commit_record(dataset=DIBAO, record=record, subject=c.subject, values=values)
        self.records[record] = int(out["seq"])
        self.values[record] = values
        return int(out["seq"])

    def agreement_body(
        self,
        *,
        requester: str = "gjj",
        scope: dict[str, str] | None = None,
        purposes: list[str] | None = None,
        consent_required: bool = True,
        start: float = -86400.0,
        end: float = 365 * 86400.0,
        dataset: str = DIBAO,
    ) -> dict[str, Any]:
        t0 = now()
        return {
            "owner": self.depts["mzj"].key_id,
            "requester": self.depts[requester].key_id,
            "scope": {dataset: dict(CONSENT_SCOPE if scope is None else scope)},
            "purposes": purposes or [CONSENT_PURPOSE],
            "legal_basis": "个人同意" if consent_required else "履行职责",
            "consent_required": consent_required,
            "valid_from": format_ts(t0 + timedelta(seconds=start)),
            "valid_until": format_ts(t0 + timedelta(seconds=end)),
            "commitment": None,
        }

    def approve(self, **kwargs: Any) -> int:
        """民政局 approves an agreement (see ``agreement_body``); its seq."""
        return int(self.depts["mzj"].client.approve_agreement(self.agreement_body(**kwargs))["seq"])

    def grant_body(
        self,
        citizen: str,
        *,
        grantee: str = "gjj",
        fields: list[str] | None = None,
        purpose: str = CONSENT_PURPOSE,
        start: float = -60.0,
        end: float = 30 * 86400.0,
        max_uses: int | None = 5,
        subject: str | None = None,
        dataset: str = DIBAO,
    ) -> dict[str, Any]:
        t0 = now()
        return {
            "subject": subject or self.citizens[citizen].subject,
            "grantee": self.depts[grantee].key_id,
            "scope": {dataset: list(fields or CONSENT_SCOPE)},
            "purpose": purpose,
            "valid_from": format_ts(t0 + timedelta(seconds=start)),
            "valid_until": format_ts(t0 + timedelta(seconds=end)),
            "max_uses": max_uses,
        }

    def grant(self, citizen: str, **kwargs: Any) -> int:
        """``citizen`` grants consent with their own key (see ``grant_body``); its seq."""
        return int(self.citizens[citizen].client.grant_consent(self.grant_body(citizen, **kwargs))["seq"])

    def rebind(self, node: Node, make_client: ClientFactory) -> World:
        """The same world (keys, seqs, values) on ``node``, a copy of this world's database, with new clients."""
        other = World(node, make_client, self.admin, auditor=None)  # type: ignore[arg-type]
        assert self.auditor.key is not None
        other.auditor = other.client(self.auditor.key)
        for label, d in self.depts.items():
            other.depts[label] = Department(d.key, d.name, other.client(d.key))
        for label, c in self.citizens.items():
            other.citizens[label] = Citizen(c.key, c.subject, c.id_number, c.name, c.phone, other.client(c.key))
        other.datasets, other.records, other.values = dict(self.datasets), dict(self.records), dict(self.values)
        other.consent_agreement, other.duty_agreement = self.consent_agreement, self.duty_agreement
        return other

    def close(self) -> None:
        for c in self.clients:
            c.close()


def build_world(node: Node, make_client: ClientFactory) -> World:
    """The city described in the module docstring, on an initialised ``node``."""
    world = World(node, make_client, node.local_key("admin"), auditor=None)  # type: ignore[arg-type]
    auditor = StoredKey.generate("auditor-sjj", role="auditor")
    world.register(auditor, "auditor", "市审计局数据审计处")
    world.auditor = world.client(auditor)
    world.add_department("mzj", "市民政局")
    world.add_department("gjj", "市住房公积金管理中心")
    world.add_department("rsj", "市人力资源和社会保障局")
    world.add_citizen("a", name="测试张三丰", birth="19800101", serial="123", phone="13912345678")
    world.add_citizen("b", name="测试李四光", birth="19750505", serial="456", phone="13698765432")
    world.register_dataset("mzj", DIBAO, "最低生活保障对象信息", DIBAO_FIELDS)
    world.register_dataset("gjj", DEPOSIT, "住房公积金缴存信息", DEPOSIT_FIELDS)
    world.commit_dibao("mzj-a", "a")
    world.commit_dibao("mzj-b", "b", household_size=2, allowance=720)
    a = world.citizens["a"]
    out = world.depts["gjj"].client.commit_record(
        dataset=DEPOSIT, record="gjj-a", subject=a.subject,
        values={"name": a.name, "id_number": a.id_number, "balance": 52000},
    )  # fmt: skip
    world.records["gjj-a"] = int(out["seq"])
    world.consent_agreement = world.approve()
    world.duty_agreement = world.approve(scope=DUTY_SCOPE, purposes=[DUTY_PURPOSE], consent_required=False)
    return world


def leaf_body(leaf_b64: str) -> dict[str, Any]:
    return parse_envelope(base64.b64decode(leaf_b64)).body
