"""Chinese masking conventions (脱敏) for the masked form of a field: pure and deterministic.

The convention is chosen from the field's name (``mask_kind``): identity numbers and phone numbers keep
their first 3 and last 4 characters, a person's name keeps the surname, an address its first 6
characters, a bank card its last 4; anything else keeps its first and last character.
"""

from __future__ import annotations

MASK = "*"
KINDS = ("id_number", "phone", "name", "address", "bank_card", "default")

PERSON_NAME_FIELDS = frozenset(
    {"name", "full_name", "legal_representative", "household_head", "contact_name", "guardian_name"}
)
PHONE_FIELDS = frozenset({"phone", "mobile", "telephone"})
BANK_CARD_FIELDS = frozenset({"bank_card", "card_number", "bank_account", "account_number"})
# Two-character surnames (复姓) kept whole whatever the length of the name.
COMPOUND_SURNAMES = frozenset(
    {
        "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐",
        "长孙", "宇文", "司徒", "夏侯", "轩辕", "端木", "独孤", "南宫", "西门", "百里",
        "呼延", "澹台", "公冶", "太史", "申屠", "闻人", "赫连", "钟离", "万俟", "司空",
    }
)  # fmt: skip
ADDRESS_KEEP = 6
ADDRESS_TAIL = MASK * 4


def mask_kind(field: str) -> str:
    """Which convention masks the field called ``field`` (one of ``KINDS``)."""
    if field == "id_number" or field.endswith("_id_number"):
        return "id_number"
    if field in PHONE_FIELDS or field.endswith(("_phone", "_mobile")):
        return "phone"
    if field in PERSON_NAME_FIELDS:
        return "name"
    if field == "address" or field.endswith("_address"):
        return "address"
    if field in BANK_CARD_FIELDS or field.endswith("_card"):
        return "bank_card"
    return "default"


def mask(field: str, value: str | int) -> str:
    """The masked form of ``value`` for the field called ``field``."""
    return mask_as(mask_kind(field), str(value))


def mask_as(kind: str, text: str) -> str:
    """Mask ``text`` by the convention ``kind``."""
    if kind in ("id_number", "phone"):
        return _keep(text, 3, 4) if len(text) > 7 else _default(text)
    if kind == "name":
        return _name(text)
    if kind == "address":
        if len(text) > ADDRESS_KEEP:
            return text[:ADDRESS_KEEP] + ADDRESS_TAIL
        return text[: len(text) // 2] + ADDRESS_TAIL if text else ""
    if kind == "bank_card":
        return _keep(text, 0, 4) if len(text) > 4 else _default(text)
    if kind == "default":
        return _default(text)
    raise ValueError(f"unknown masking kind {kind!r}")


def _keep(text: str, head: int, tail: int) -> str:
    return text[:head] + MASK * (len(text) - head - tail) + text[len(text) - tail :]


def _name(text: str) -> str:
    if len(text) <= 1:
        return MASK * len(text)
    keep = 2 if len(text) >= 3 and (text[:2] in COMPOUND_SURNAMES or len(text) == 4) else 1
    return text[:keep] + MASK * (len(text) - keep)


def _default(text: str) -> str:
    if len(text) <= 1:
        return MASK * len(text)
    if len(text) == 2:
        return text[0] + MASK
    return text[0] + MASK * (len(text) - 2) + text[-1]
