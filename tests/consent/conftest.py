"""The consent tests' world: a city with an owner department, requesters, citizens and records."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest

from consent.catalogue import Dataset
from consent.commitment import RecordCommitment
from tests.consent.builder import Actor, Ledger

HUKOU: dict[str, Any] = {
    "dataset": "gaj.hukou",
    "title": "户籍人口基本信息",
    "fields": [
        {"name": "name", "sensitivity": "high"},
        {"name": "id_number", "sensitivity": "high"},
        {"name": "gender", "sensitivity": "medium"},
        {"name": "household_address", "sensitivity": "high"},
        {"name": "phone", "sensitivity": "high"},
    ],
    "level": "重要",
    "personal": True,
    "update_frequency": "实时",
}
LICENCE: dict[str, Any] = {
    "dataset": "scjgj.business_licence",
    "title": "企业营业执照信息",
    "fields": [
        {"name": "credit_code", "sensitivity": "low"},
        {"name": "company_name", "sensitivity": "low"},
        {"name": "legal_representative", "sensitivity": "medium"},
    ],
    "level": "一般",
    "personal": False,
    "update_frequency": "实时",
}
ALICE_VALUES: dict[str, Any] = {
    "name": "张三",
    "id_number": "330106199001011234",
    "gender": "男",
    "household_address": "浙江省杭州市西湖区文三路100号",
    "phone": "13812345678",
}
BOB_VALUES: dict[str, Any] = {
    "name": "欧阳娜娜",
    "id_number": "33010619920202222X",
    "gender": "女",
    "household_address": "浙江省杭州市上城区解放路1号",
    "phone": "13900001111",
}
LICENCE_VALUES: dict[str, Any] = {
    "credit_code": "91330100MA2XXXXXX1",
    "company_name": "杭州西湖科技有限公司",
    "legal_representative": "王五",
}
DIBAO = "最低生活保障资格核查"  # a purpose
HOUSING = "公租房资格审核"  # another purpose


def subject_of(name: str) -> str:
    return "sub:" + hashlib.sha256(name.encode()).hexdigest()


@dataclass
class World:
    ledger: Ledger
    gaj: Actor  # owns gaj.hukou
    scjgj: Actor  # owns scjgj.business_licence
    mzj: Actor  # a requester
    rsj: Actor  # another requester
    alice: Actor
    bob: Actor
    service: Actor
    hukou: Dataset
    licence: Dataset
    alice_seq: int  # the record.commit of alice's hukou record h-0001
    alice_commit: RecordCommitment
    bob_seq: int  # h-0002
    licence_seq: int  # l-0001

    @property
    def state(self) -> Any:
        return self.ledger.state


def build_world() -> World:
    ledger = Ledger()
    gaj = ledger.register("gaj", "department")
    scjgj = ledger.register("scjgj", "department")
    mzj = ledger.register("mzj", "department")
    rsj = ledger.register("rsj", "department")
    alice = ledger.register("alice", "citizen", subject=subject_of("alice"))
    bob = ledger.register("bob", "citizen", subject=subject_of("bob"))
    service = ledger.register("service", "service")
    hukou = ledger.register_dataset(gaj, HUKOU)
    licence = ledger.register_dataset(scjgj, LICENCE)
    alice_seq, alice_commit = ledger.commit(gaj, hukou, "h-0001", subject_of("alice"), ALICE_VALUES)
    bob_seq, _ = ledger.commit(gaj, hukou, "h-0002", subject_of("bob"), BOB_VALUES)
    licence_seq, _ = ledger.commit(scjgj, licence, "l-0001", "org:91330100MA2XXXXXX1", LICENCE_VALUES)
    return World(
        ledger, gaj, scjgj, mzj, rsj, alice, bob, service, hukou, licence, alice_seq, alice_commit, bob_seq, licence_seq
    )


@pytest.fixture
def world() -> World:
    return build_world()
