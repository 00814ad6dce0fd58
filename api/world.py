"""The demo city: departments, their datasets, citizens and an auditor (facts, no I/O)."""

from __future__ import annotations

import random
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


# ---------------------------------------------------------------------------------------------------
# Synthetic people and their records (deterministic: the same index always gives the same person)
# ---------------------------------------------------------------------------------------------------

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "司徒")
GIVEN_MALE = "伟强磊军勇杰涛明超斌鹏辉华建平刚浩宇俊峰文博晨昊轩睿子嘉志国海东成林永翔"
GIVEN_FEMALE = "芳娜敏静丽艳娟霞燕玲婷雪慧颖琳欣怡萱晶倩佳梦悦诗雨洁红英秀兰梅琴"
# Districts of 杭州市 with a few of their roads, and residential communities.
DISTRICTS: dict[str, tuple[str, ...]] = {
    "上城区": ("解放路", "庆春路", "江城路", "秋涛路", "望江东路", "钱江路"),
    "拱墅区": ("莫干山路", "湖墅南路", "大关路", "台州路", "上塘路", "祥园路"),
    "西湖区": ("文三路", "文二路", "天目山路", "古墩路", "西溪路", "之江路"),
    "滨江区": ("江南大道", "滨盛路", "长河路", "江虹路", "网商路", "闻涛路"),
    "萧山区": ("人民路", "市心中路", "金城路", "通惠中路", "博学路", "建设一路"),
    "余杭区": ("文一西路", "五常大道", "良睦路", "龙舟路", "禹航路", "闲林街"),
    "临平区": ("临平大道", "迎宾路", "世纪大道", "藕花洲大街", "北沙西路"),
    "钱塘区": ("学林街", "文泽路", "福城路", "江东大道", "义蓬路"),
    "富阳区": ("桂花路", "金桥北路", "江滨西大道", "大桥路"),
    "临安区": ("衣锦街", "钱王大街", "万马路", "石镜街"),
}
DISTRICT_CODES = {
    "上城区": "330102",
    "拱墅区": "330105",
    "西湖区": "330106",
    "滨江区": "330108",
    "萧山区": "330109",
    "余杭区": "330110",
    "临平区": "330113",
    "钱塘区": "330114",
    "富阳区": "330111",
    "临安区": "330112",
}
COMMUNITIES = (
    "翠苑一区", "古荡新村", "朝晖九区", "和睦新村", "采荷人家", "景芳三区", "闸弄口新村", "金色海岸",
    "滨江花园", "天阳明月", "风雅钱塘", "星洲花园", "东方郡", "西溪诚园", "蓝色钱江", "丁桥新苑",
)  # fmt: skip
PHONE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155", "157", "158",
    "159", "166", "176", "177", "180", "181", "182", "183", "185", "186", "187", "188", "189", "191", "199",
)  # fmt: skip
FIRM_WORDS = (
    "钱江", "西子", "之江", "运河", "湖滨", "武林", "良渚", "云栖", "东信", "天堂", "新安江", "富春", "九溪", "北山",
)  # fmt: skip
FIRM_TRADES = (
    "科技", "网络科技", "电子商务", "建设工程", "餐饮管理", "物流", "医疗器械", "教育咨询", "文化传媒", "机械制造",
    "纺织", "食品", "智能装备", "供应链管理",
)  # fmt: skip
BLOOD_TYPES = ("A型 Rh阳性", "B型 Rh阳性", "O型 Rh阳性", "AB型 Rh阳性", "O型 Rh阴性")
CONDITIONS = ("无", "无", "无", "高血压", "2型糖尿病", "高血压；2型糖尿病", "慢性阻塞性肺疾病", "冠心病", "慢性肾病")
VACCINES = ("新冠疫苗3剂", "流感疫苗(2025)", "乙肝疫苗3剂", "带状疱疹疫苗2剂", "肺炎球菌疫苗")
DIBAO_STANDARD = 1290  # 杭州市城乡低保标准, 元/月
SI_BASE = (4462, 24930)  # 杭州市社保缴费基数上下限, 元/月
LICENCES = 40
STATUSES = {"rsj.social_insurance": ("正常缴费", "暂停缴费"), "ybj.enrolment": ("正常参保", "暂停参保")}
# Purposes no agreement names: requests made for them are denied (purpose_not_allowed).
STRAY_PURPOSES = ("商业营销", "招商引资意向调查", "个人信用评估", "人员背景调查", "舆情研判")


def _rng(*parts: object) -> random.Random:
    """A generator seeded by ``parts`` (string seeds hash the same in every process)."""
    return random.Random(":".join(str(p) for p in parts))


def person_name(rng: random.Random, male: bool, surname: str | None = None) -> str:
    if surname is None:
        surname = rng.choice(COMPOUND_SURNAMES) if rng.random() < 0.02 else rng.choice(SURNAMES)
    pool = GIVEN_MALE if male else GIVEN_FEMALE
    given = rng.choice(pool) + (rng.choice(pool) if rng.random() < 0.7 else "")
    return surname + given


def address(rng: random.Random) -> str:
    district = rng.choice(sorted(DISTRICTS))
    road = rng.choice(DISTRICTS[district])
    return (
        f"浙江省杭州市{district}{road}{rng.randint(1, 999)}号{rng.choice(COMMUNITIES)}"
        f"{rng.randint(1, 30)}幢{rng.randint(1, 4)}单元{rng.randint(1, 28)}{rng.randint(1, 4):02d}室"
    )


def phone(rng: random.Random) -> str:
    return rng.choice(PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def firm_name(rng: random.Random) -> str:
    return f"杭州{rng.choice(FIRM_WORDS)}{rng.choice(FIRM_TRADES)}有限公司"


@dataclass(frozen=True)
class Person:
    """A demo citizen's (synthetic) facts; records in the personal datasets are drawn from them."""

    index: int
    name: str
    id_number: str
    gender: str
    birth_date: str
    address: str
    phone: str
    household_head: str
    household_size: int
    employer: str | None
    contribution_base: int
    months_paid: int

    @property
    def age(self) -> int:
        return 2026 - int(self.birth_date[:4])


def person(index: int) -> Person:
    """Demo citizen ``index``: name, ID number (``citizen_id_number``), address, phone, work."""
    rng = _rng("person", index)
    number = citizen_id_number(index)
    male = int(number[16]) % 2 == 1
    name = person_name(rng, male)
    size = rng.choice((1, 2, 2, 3, 3, 3, 4, 4, 5))
    head = name if size == 1 or rng.random() < 0.5 else person_name(rng, rng.random() < 0.5, name[0])
    birth = f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
    age = 2026 - int(number[6:10])
    employed = 18 <= age < 63 and rng.random() < 0.82
    base = rng.randrange(SI_BASE[0], SI_BASE[1] // 2, 10) if employed else 0
    return Person(
        index=index,
        name=name,
        id_number=number,
        gender="男" if male else "女",
        birth_date=birth,
        address=address(rng),
        phone=phone(rng),
        household_head=head,
        household_size=size,
        employer=firm_name(rng) if employed else None,
        contribution_base=base,
        months_paid=rng.randint(6, min(max(age - 18, 1), 40) * 12) if employed else 0,
    )


def person_datasets(p: Person) -> list[str]:
    """The personal datasets holding a record about ``p`` (everyone has a 户籍 record)."""
    rng = _rng("datasets", p.index)
    out = ["gaj.hukou"]
    if p.employer is not None:
        out.append("rsj.social_insurance")
        if rng.random() < 0.55:
            out.append("gjj.deposit")
    elif p.age >= 18 and rng.random() < 0.35:
        out.append("mzj.dibao")
    if rng.random() < 0.45:
        out.append("ybj.enrolment")
    if rng.random() < 0.25 or p.age >= 65:
        out.append("wjw.health_record")
    return out


RECORD_PREFIX = {
    "gaj.hukou": "gaj-hj",
    "rsj.social_insurance": "rsj-sb",
    "mzj.dibao": "mzj-db",
    "wjw.health_record": "wjw-jk",
    "ybj.enrolment": "ybj-cb",
    "gjj.deposit": "gjj-jc",
}


def record_id(dataset: str, index: int) -> str:
    """The record id of demo citizen ``index`` in personal dataset ``dataset``."""
    return f"{RECORD_PREFIX[dataset]}-{index:06d}"


def record_values(dataset: str, p: Person, version: int = 1) -> dict[str, str | int]:
    """The values of ``p``'s record in ``dataset``; a later ``version`` changes a field or two, as updates do."""
    rng = _rng("record", dataset, p.index)
    values: dict[str, str | int]
    if dataset == "gaj.hukou":
        values = {
            "name": p.name, "id_number": p.id_number, "gender": p.gender, "birth_date": p.birth_date,
            "household_address": p.address, "household_head": p.household_head,
        }  # fmt: skip
    elif dataset == "rsj.social_insurance":
        values = {
            "name": p.name, "id_number": p.id_number, "employer": p.employer or "灵活就业",
            "contribution_base": p.contribution_base or SI_BASE[0], "months_paid": p.months_paid,
            "status": "正常缴费" if rng.random() < 0.9 else "暂停缴费",
        }  # fmt: skip
    elif dataset == "mzj.dibao":
        allowance = max(DIBAO_STANDARD * p.household_size - rng.randrange(0, 1200, 10), 300)
        values = {
            "name": p.name, "id_number": p.id_number, "household_size": p.household_size,
            "monthly_allowance": allowance, "approved_on": f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-01",
            "address": p.address, "phone": p.phone,
        }  # fmt: skip
    elif dataset == "wjw.health_record":
        shots = sorted(rng.sample(VACCINES, rng.randint(1, 3)))
        values = {
            "name": p.name, "id_number": p.id_number, "blood_type": rng.choice(BLOOD_TYPES),
            "chronic_conditions": rng.choice(CONDITIONS) if p.age >= 40 else "无", "vaccinations": "；".join(shots),
        }  # fmt: skip
    elif dataset == "ybj.enrolment":
        values = {
            "name": p.name, "id_number": p.id_number,
            "insurance_type": "职工基本医疗保险" if p.employer else "城乡居民基本医疗保险",
            "status": "正常参保" if rng.random() < 0.93 else "暂停参保", "account_balance": rng.randrange(0, 60000, 1),
        }  # fmt: skip
    elif dataset == "gjj.deposit":
        deposit = round(p.contribution_base * 0.12) * 2
        values = {
            "name": p.name, "id_number": p.id_number, "employer": p.employer or "灵活就业",
            "monthly_deposit": deposit, "balance": deposit * rng.randint(3, 120),
        }  # fmt: skip
    else:
        raise KeyError(f"no demo records for dataset {dataset}")
    for v in range(2, version + 1):
        _update(dataset, values, _rng("update", dataset, p.index, v))
    return values


def _update(dataset: str, values: dict[str, str | int], rng: random.Random) -> None:
    """Change what a new version of a record changes: an address, a phone, an amount, a count."""
    changes: dict[str, Any] = {
        "household_address": lambda: address(rng),
        "address": lambda: address(rng),
        "phone": lambda: phone(rng),
        "employer": lambda: firm_name(rng),
        "contribution_base": lambda: rng.randrange(SI_BASE[0], SI_BASE[1], 10),
        "months_paid": lambda: int(values["months_paid"]) + rng.randint(1, 6),
        "monthly_allowance": lambda: max(int(values["monthly_allowance"]) + rng.randrange(-300, 300, 10), 300),
        "household_size": lambda: max(1, int(values["household_size"]) + rng.choice((-1, 1))),
        "account_balance": lambda: rng.randrange(0, 60000),
        "balance": lambda: int(values["balance"]) + rng.randrange(0, 20000),
        "monthly_deposit": lambda: rng.randrange(1000, 6000, 2),
        "chronic_conditions": lambda: rng.choice(CONDITIONS),
        "vaccinations": lambda: "；".join(sorted(rng.sample(VACCINES, rng.randint(1, 3)))),
        "status": lambda: rng.choice(STATUSES[dataset]),
    }
    field = rng.choice(sorted(f for f in values if f in changes))
    values[field] = changes[field]()


def _org_code(body8: str) -> str:
    """GB 11714 organisation code: eight digits and their check character."""
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    check = 11 - sum(int(c) * w for c, w in zip(body8, weights, strict=True)) % 11
    return body8 + ("X" if check == 10 else "0" if check == 11 else str(check))


CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def credit_code(first17: str) -> str:
    """GB 32100 unified social credit code: 17 characters and their check character."""
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    total = sum(CREDIT_CHARS.index(c) * w for c, w in zip(first17, weights, strict=True))
    return first17 + CREDIT_CHARS[(31 - total % 31) % 31]


def licence(index: int) -> tuple[str, dict[str, str | int]]:
    """Business licence ``index``: its record id (the credit code) and values (non-personal data)."""
    rng = _rng("licence", index)
    district = rng.choice(sorted(DISTRICTS))
    code = credit_code("91" + DISTRICT_CODES[district] + _org_code(f"{rng.randrange(10**8):08d}"))
    road = rng.choice(DISTRICTS[district])
    return code, {
        "credit_code": code,
        "company_name": firm_name(rng),
        "legal_representative": person_name(rng, rng.random() < 0.7),
        "registered_capital": f"{rng.choice((10, 50, 100, 200, 300, 500, 1000, 2000, 5000))}万元人民币",
        "address": f"浙江省杭州市{district}{road}{rng.randint(1, 999)}号{rng.randint(1, 20)}幢{rng.randint(101, 2808)}",
        "status": "存续" if rng.random() < 0.9 else rng.choice(("注销", "吊销")),
    }


# ---------------------------------------------------------------------------------------------------
# Sharing scenarios (场景授权) between the demo departments
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """An agreement the owner approves for the requester; ``window``: current, expired or future.

    ``consenters`` names the datasets a citizen must have records in to be asked for consent,
    and ``share`` the fraction of them who grant it in the demo.
    """

    owner: str
    requester: str
    dataset: str
    fields: tuple[tuple[str, str], ...]  # (field, full | masked)
    purposes: tuple[str, ...]
    legal_basis: str
    consent_required: bool
    window: str = "current"
    statement: str | None = None  # the requester's 告知承诺, for that basis
    consenters: tuple[str, ...] = ()
    share: float = 0.0
    demo: bool = True  # approved by `shulian demo`; otherwise only by `simulate`

    @property
    def scope(self) -> dict[str, dict[str, str]]:
        return {self.dataset: dict(self.fields)}


SCENARIOS = (
    Scenario(
        "dept-mzj", "dept-gjj", "mzj.dibao",
        (("name", "masked"), ("id_number", "masked"), ("household_size", "full"), ("monthly_allowance", "full"),
         ("approved_on", "full")),
        ("住房保障资格审核",), "个人同意", True, consenters=("mzj.dibao",), share=0.5,
    ),
    Scenario(
        "dept-rsj", "dept-ybj", "rsj.social_insurance",
        (("name", "full"), ("id_number", "full"), ("employer", "full"), ("months_paid", "full"), ("status", "full")),
        ("参保核验",), "履行职责", False,
    ),
    Scenario(
        "dept-scjgj", "dept-rsj", "scjgj.business_licence",
        (("credit_code", "full"), ("company_name", "full"), ("legal_representative", "full"), ("status", "full")),
        ("就业登记核验", "社保登记核验"), "法律法规", False,
    ),
    Scenario(
        "dept-gaj", "dept-jyj", "gaj.hukou",
        (("name", "full"), ("birth_date", "full"), ("household_address", "masked"), ("household_head", "masked")),
        ("义务教育入学资格审核",), "告知承诺", False,
        statement="本单位承诺：所获户籍信息仅用于义务教育入学资格审核，不向任何第三方提供，审核办结后按规定删除，接受过程监督。",
    ),
    Scenario(
        "dept-gaj", "dept-mzj", "gaj.hukou",
        (("name", "full"), ("id_number", "full"), ("household_address", "full"), ("household_head", "full")),
        ("最低生活保障资格审核",), "履行职责", True, consenters=("mzj.dibao",), share=0.6,
    ),
    Scenario(
        "dept-gjj", "dept-mzj", "gjj.deposit",
        (("name", "masked"), ("id_number", "masked"), ("monthly_deposit", "full"), ("balance", "full")),
        ("最低生活保障资格审核",), "个人同意", True, consenters=("mzj.dibao", "gjj.deposit"), share=0.6,
    ),
    Scenario(
        "dept-wjw", "dept-ybj", "wjw.health_record",
        (("name", "full"), ("id_number", "full"), ("chronic_conditions", "full")),
        ("门诊慢特病待遇认定",), "个人同意", True, consenters=("wjw.health_record",), share=0.35,
    ),
    Scenario(
        "dept-ybj", "dept-mzj", "ybj.enrolment",
        (("name", "masked"), ("id_number", "masked"), ("insurance_type", "full"), ("status", "full")),
        ("医疗救助对象核查",), "履行职责", False,
    ),
    Scenario(
        "dept-rsj", "dept-gjj", "rsj.social_insurance",
        (("name", "full"), ("id_number", "masked"), ("employer", "full"), ("contribution_base", "full"),
         ("months_paid", "full")),
        ("公积金贷款资格审核",), "个人同意", True, consenters=("rsj.social_insurance", "gjj.deposit"), share=0.4,
    ),
    Scenario(
        "dept-gaj", "dept-wjw", "gaj.hukou",
        (("name", "full"), ("id_number", "full"), ("household_address", "full")),
        ("疫情防控流行病学调查",), "法律法规", False, window="expired",
    ),
    # Approved only while simulating: a scheme that starts next term, and a second scheme on a pair.
    Scenario(
        "dept-mzj", "dept-jyj", "mzj.dibao",
        (("name", "full"), ("id_number", "masked"), ("household_size", "full")),
        ("困难学生教育资助审核",), "履行职责", False, window="future", demo=False,
    ),
    Scenario(
        "dept-ybj", "dept-gjj", "ybj.enrolment",
        (("name", "masked"), ("insurance_type", "full"), ("status", "full")),
        ("住房公积金提取审核",), "个人同意", True, consenters=("ybj.enrolment", "gjj.deposit"), share=0.3, demo=False,
    ),
)  # fmt: skip
