"""The demo city: departments, their datasets, citizens and an auditor (facts, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from keys.subject import id_check_digit

LEVELS = ("一般", "重要", "核心")


@dataclass(frozen=True)
class Department:
    key: str  # keystore name
    name: str


@dataclass(frozen=True)
class Dataset:
    dataset: str
    owner: str  # department keystore name
    title: str
    fields: tuple[tuple[str, str], ...]  # (name, sensitivity)
    level: str
    personal: bool
    frequency: str

    def body(self, owner_key_id: str) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "owner": owner_key_id,
            "title": self.title,
            "fields": [{"name": n, "sensitivity": s} for n, s in self.fields],
            "level": self.level,
            "personal": self.personal,
            "update_frequency": self.frequency,
        }


DEPARTMENTS = (
    Department("dept-gaj", "市公安局"),
    Department("dept-rsj", "市人力资源和社会保障局"),
    Department("dept-mzj", "市民政局"),
    Department("dept-wjw", "市卫生健康委员会"),
    Department("dept-ybj", "市医疗保障局"),
    Department("dept-scjgj", "市市场监督管理局"),
    Department("dept-gjj", "市住房公积金管理中心"),
    Department("dept-jyj", "市教育局"),
)

DATASETS = (
    Dataset(
        "gaj.hukou",
        "dept-gaj",
        "户籍人口基本信息",
        (
            ("name", "high"),
            ("id_number", "high"),
            ("gender", "medium"),
            ("birth_date", "medium"),
            ("household_address", "high"),
            ("household_head", "medium"),
        ),
        "重要",
        True,
        "实时",
    ),
    Dataset(
        "rsj.social_insurance",
        "dept-rsj",
        "社会保险缴纳记录",
        (
            ("name", "high"),
            ("id_number", "high"),
            ("employer", "medium"),
            ("contribution_base", "medium"),
            ("months_paid", "low"),
            ("status", "low"),
        ),
        "重要",
        True,
        "每月",
    ),
    Dataset(
        "mzj.dibao",
        "dept-mzj",
        "最低生活保障对象信息",
        (
            ("name", "high"),
            ("id_number", "high"),
            ("household_size", "medium"),
            ("monthly_allowance", "medium"),
            ("approved_on", "low"),
            ("address", "high"),
            ("phone", "high"),
        ),
        "重要",
        True,
        "每月",
    ),
    Dataset(
        "wjw.health_record",
        "dept-wjw",
        "居民电子健康档案摘要",
        (
            ("name", "high"),
            ("id_number", "high"),
            ("blood_type", "high"),
            ("chronic_conditions", "high"),
            ("vaccinations", "medium"),
        ),
        "核心",
        True,
        "实时",
    ),
    Dataset(
        "ybj.enrolment",
        "dept-ybj",
        "医疗保险参保信息",
        (
            ("name", "high"),
            ("id_number", "high"),
            ("insurance_type", "low"),
            ("status", "low"),
            ("account_balance", "medium"),
        ),
        "重要",
        True,
        "每日",
    ),
    Dataset(
        "scjgj.business_licence",
        "dept-scjgj",
        "企业营业执照信息",
        (
            ("credit_code", "low"),
            ("company_name", "low"),
            ("legal_representative", "medium"),
            ("registered_capital", "low"),
            ("address", "low"),
            ("status", "low"),
        ),
        "一般",
        False,
        "实时",
    ),
    Dataset(
        "gjj.deposit",
        "dept-gjj",
        "住房公积金缴存信息",
        (
            ("name", "high"),
            ("id_number", "high"),
            ("employer", "medium"),
            ("monthly_deposit", "medium"),
            ("balance", "high"),
        ),
        "重要",
        True,
        "每月",
    ),
)

AUDITOR = ("auditor-sjj", "市审计局数据审计处")
CITIZENS = 200
NEW_DATASET_TITLES = (
    ("dept-gaj", "居住证信息", (("name", "high"), ("id_number", "high"), ("residence_address", "high"))),
    ("dept-rsj", "就业登记信息", (("name", "high"), ("id_number", "high"), ("employer", "medium"))),
    ("dept-mzj", "婚姻登记信息", (("name", "high"), ("id_number", "high"), ("marital_status", "high"))),
    ("dept-wjw", "出生医学证明", (("name", "high"), ("birth_date", "medium"), ("hospital", "low"))),
    ("dept-ybj", "医保结算记录", (("name", "high"), ("id_number", "high"), ("amount", "medium"))),
    ("dept-scjgj", "行政处罚信息", (("credit_code", "low"), ("company_name", "low"), ("penalty", "low"))),
    ("dept-gjj", "公积金贷款信息", (("name", "high"), ("id_number", "high"), ("loan_balance", "high"))),
    ("dept-jyj", "学籍信息", (("name", "high"), ("id_number", "high"), ("school", "medium"))),
)


def citizen_key_name(index: int) -> str:
    return f"citizen-{index:04d}"


def citizen_public_name(index: int) -> str:
    """The public, non-identifying name a citizen's key carries on the ledger."""
    return f"市民{index:04d}"


def citizen_id_number(index: int) -> str:
    """A synthetic, checksum-valid resident identity number for demo citizen ``index``."""
    birth = date(1950, 1, 1) + timedelta(days=(index * 7919) % 20000)
    first17 = f"330106{birth:%Y%m%d}{index % 1000:03d}"
    return first17 + id_check_digit(first17)
