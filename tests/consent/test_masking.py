"""Masking conventions: the vectors in tests/vectors/masking.json, and properties of every mask."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.masking import KINDS, MASK, mask, mask_as, mask_kind

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "masking.json"
DATA: dict[str, Any] = json.loads(VECTORS.read_text("utf-8"))
CASES = [pytest.param(c, id=f"{i:03d}-{c['desc'][:60]}") for i, c in enumerate(DATA["cases"])]


def test_vector_file_shape() -> None:
    assert DATA["desc"]
    for case in DATA["cases"]:
        assert case["desc"] and case["expect"] == "ok"
        assert set(case) == {"desc", "field", "value", "expect", "masked"}


@pytest.mark.parametrize("case", CASES)
def test_masking_vectors(case: dict[str, Any]) -> None:
    assert mask(case["field"], case["value"]) == case["masked"]


def test_kinds_by_field_name() -> None:
    assert mask_kind("id_number") == "id_number"
    assert mask_kind("phone") == mask_kind("contact_mobile") == "phone"
    assert mask_kind("name") == mask_kind("legal_representative") == "name"
    assert mask_kind("company_name") == "default"
    assert mask_kind("household_address") == "address"
    assert mask_kind("bank_card") == mask_kind("social_security_card") == "bank_card"
    with pytest.raises(ValueError):
        mask_as("nothing", "x")


@given(st.sampled_from(KINDS), st.text(max_size=40))
def test_masks_hide_something_and_are_deterministic(kind: str, text: str) -> None:
    masked = mask_as(kind, text)
    assert masked == mask_as(kind, text)
    if text:
        assert MASK in masked
        # unchanged only where the characters it hides were mask characters already ("0*" → "0*")
        assert masked != text or MASK in text
    if kind != "address":
        assert len(masked) == len(text)  # only the address hides its length
