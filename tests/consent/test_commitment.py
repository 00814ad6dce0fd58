"""Record commitments and selective disclosure: round trips, and every tampering fails."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.catalogue import Dataset, FieldSpec, parse_dataset
from consent.commitment import (
    FORMS,
    SALT_SIZE,
    commit_record,
    decode_salts,
    disclose,
    disclose_opened,
    encode_salts,
    leaf_commitment,
    open_leaves,
    recompute_root,
    verify_disclosure,
)
from consent.errors import CommitmentMismatch, DisclosureError, InvalidRecord, UnknownField
from consent.masking import mask
from ledger.canonical import canonical_bytes
from ledger.tree import leaf_hash, node_hash
from tests.consent.conftest import ALICE_VALUES, HUKOU

OWNER = "0" * 32
HUKOU_DS = parse_dataset({**HUKOU, "owner": OWNER})
MODES = {"name": "full", "id_number": "masked"}


def _disclosure() -> tuple[bytes, list[dict[str, Any]]]:
    rc = commit_record(HUKOU_DS, ALICE_VALUES)
    return rc.root, disclose(HUKOU_DS, ALICE_VALUES, rc.salts, MODES)


def test_round_trip_opens_exactly_the_modes() -> None:
    root, items = _disclosure()
    assert len(items) == 2 * len(HUKOU_DS.fields)
    opened = verify_disclosure(items, root, dataset=HUKOU_DS)
    assert opened == {"name": "张三", "id_number": "330***********1234"}
    assert recompute_root(items) == root
    assert [i.get("form") for i in items if "field" in i] == ["raw", "masked"]
    assert sum("hash" in i for i in items) == len(items) - 2


def test_commitment_is_the_rfc9162_root_of_salted_leaves() -> None:
    """Recompute one record's commitment by hand (two fields, four leaves)."""
    ds = Dataset("t.d", OWNER, "t", (FieldSpec("name", "high"), FieldSpec("phone", "high")), "一般", True, "每日")
    values = {"name": "张三", "phone": "13812345678"}
    salts = {"name": (b"\x01" * 16, b"\x02" * 16), "phone": (b"\x03" * 16, b"\x04" * 16)}
    rc = commit_record(ds, values, salts)
    import hashlib

    def c(salt: bytes, field: str, form: str, value: Any) -> bytes:
        return hashlib.sha256(salt + canonical_bytes({"field": field, "form": form, "value": value})).digest()

    leaves = [
        c(b"\x01" * 16, "name", "raw", "张三"),
        c(b"\x02" * 16, "name", "masked", "张*"),
        c(b"\x03" * 16, "phone", "raw", "13812345678"),
        c(b"\x04" * 16, "phone", "masked", "138****5678"),
    ]
    h = [hashlib.sha256(b"\x00" + x).digest() for x in leaves]
    expected = hashlib.sha256(
        b"\x01" + hashlib.sha256(b"\x01" + h[0] + h[1]).digest() + hashlib.sha256(b"\x01" + h[2] + h[3]).digest()
    ).digest()
    assert (
        rc.root
        == expected
        == node_hash(
            node_hash(leaf_hash(leaves[0]), leaf_hash(leaves[1])), node_hash(leaf_hash(leaves[2]), leaf_hash(leaves[3]))
        )
    )
    assert list(rc.commitments) == leaves


def test_fresh_salts_make_fresh_commitments() -> None:
    a, b = commit_record(HUKOU_DS, ALICE_VALUES), commit_record(HUKOU_DS, ALICE_VALUES)
    assert a.root != b.root
    assert commit_record(HUKOU_DS, ALICE_VALUES, a.salts).root == a.root
    assert decode_salts(encode_salts(a.salts)) == a.salts


def _opened(items: list[dict[str, Any]]) -> int:
    return next(i for i, item in enumerate(items) if "field" in item)


def _tamper_value(items: list[dict[str, Any]]) -> None:
    items[_opened(items)]["value"] = "李四"


def _tamper_salt(items: list[dict[str, Any]]) -> None:
    i = _opened(items)
    salt = bytearray(base64.b64decode(items[i]["salt"]))
    salt[0] ^= 1
    items[i]["salt"] = base64.b64encode(bytes(salt)).decode()


def _tamper_form(items: list[dict[str, Any]]) -> None:
    i = _opened(items)
    items[i]["form"] = "masked"  # claim the raw value is only the masked form


def _tamper_field(items: list[dict[str, Any]]) -> None:
    items[_opened(items)]["field"] = "gender"


def _swap_leaves(items: list[dict[str, Any]]) -> None:
    i = _opened(items)
    items[i], items[i + 1] = items[i + 1], items[i]


def _swap_hidden(items: list[dict[str, Any]]) -> None:
    items[-1], items[-2] = items[-2], items[-1]


def _flip_hash(items: list[dict[str, Any]]) -> None:
    h = bytearray(base64.b64decode(items[-1]["hash"]))
    h[31] ^= 0x80
    items[-1]["hash"] = base64.b64encode(bytes(h)).decode()


def _drop_leaf(items: list[dict[str, Any]]) -> None:
    items.pop()


def _extra_leaf(items: list[dict[str, Any]]) -> None:
    items.append(dict(items[-1]))


def _reveal_hidden(items: list[dict[str, Any]]) -> None:
    items[-2] = {"field": "phone", "form": "raw", "value": "13812345678", "salt": base64.b64encode(b"\0" * 16).decode()}


TAMPERINGS = [
    _tamper_value,
    _tamper_salt,
    _tamper_form,
    _tamper_field,
    _swap_leaves,
    _swap_hidden,
    _flip_hash,
    _drop_leaf,
    _extra_leaf,
    _reveal_hidden,
]


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=[t.__name__.strip("_") for t in TAMPERINGS])
def test_tampering_fails(tamper: Any) -> None:
    root, items = _disclosure()
    bad = copy.deepcopy(items)
    tamper(bad)
    with pytest.raises(CommitmentMismatch) as info:
        verify_disclosure(bad, root)
    assert info.value.expected == root and info.value.calculated == recompute_root(bad)
    with pytest.raises(DisclosureError):
        verify_disclosure(bad, root, dataset=HUKOU_DS)


def test_wrong_root_fails() -> None:
    root, items = _disclosure()
    other = commit_record(HUKOU_DS, ALICE_VALUES).root
    with pytest.raises(CommitmentMismatch) as info:
        verify_disclosure(items, other)
    assert info.value.calculated == root and info.value.expected == other


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "not a list",
        [{"hash": "AAAA"}],
        [{"hash": base64.b64encode(b"\0" * 32).decode(), "extra": 1}],
        [{"field": "name", "form": "raw", "value": True, "salt": base64.b64encode(b"\0" * 16).decode()}],
        [{"field": "name", "form": "plain", "value": "x", "salt": base64.b64encode(b"\0" * 16).decode()}],
        [{"field": "name", "form": "raw", "value": "x", "salt": base64.b64encode(b"\0" * 8).decode()}],
        [{"field": "name", "form": "raw", "value": 2**60, "salt": base64.b64encode(b"\0" * 16).decode()}],
        [7],
    ],
)
def test_malformed_disclosures_are_refused(bad: Any) -> None:
    with pytest.raises(DisclosureError):
        verify_disclosure(bad, b"\0" * 32)


def test_a_field_opened_twice_is_refused() -> None:
    rc = commit_record(HUKOU_DS, ALICE_VALUES)
    raw = disclose(HUKOU_DS, ALICE_VALUES, rc.salts, {"name": "full"})
    masked = disclose(HUKOU_DS, ALICE_VALUES, rc.salts, {"name": "masked"})
    both = [raw[0], masked[1], *raw[2:]]
    assert recompute_root(both) == rc.root
    with pytest.raises(DisclosureError, match="twice"):
        verify_disclosure(both, rc.root)


def test_record_values_are_checked() -> None:
    with pytest.raises(InvalidRecord):
        commit_record(HUKOU_DS, {k: v for k, v in ALICE_VALUES.items() if k != "phone"})
    with pytest.raises(UnknownField):
        commit_record(HUKOU_DS, {**ALICE_VALUES, "salary": 1})
    for bad in (None, True, 1.5, ["x"], 2**60, "\ud800"):
        with pytest.raises(InvalidRecord):
            commit_record(HUKOU_DS, {**ALICE_VALUES, "gender": bad})
    rc = commit_record(HUKOU_DS, ALICE_VALUES)
    with pytest.raises(InvalidRecord):
        commit_record(HUKOU_DS, ALICE_VALUES, {**rc.salts, "name": (b"short", b"\0" * 16)})
    with pytest.raises(UnknownField):
        disclose(HUKOU_DS, ALICE_VALUES, rc.salts, {"salary": "full"})
    with pytest.raises(InvalidRecord):
        disclose(HUKOU_DS, ALICE_VALUES, rc.salts, {"name": "everything"})
    with pytest.raises(DisclosureError):
        leaf_commitment(b"short", "name", "raw", "x")


# -- properties ------------------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
VALUES = st.one_of(
    st.text(max_size=30).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
    st.integers(-(2**53) + 1, 2**53 - 1),
)


@st.composite
def records(draw: st.DrawFn) -> tuple[Dataset, dict[str, Any], dict[str, str]]:
    names = draw(st.lists(NAMES, min_size=1, max_size=9, unique=True))
    ds = Dataset("t.d", OWNER, "t", tuple(FieldSpec(n, "low") for n in names), "一般", True, "每日")
    values = {n: draw(VALUES) for n in names}
    modes = {n: draw(st.sampled_from(["full", "masked"])) for n in draw(st.lists(st.sampled_from(names), unique=True))}
    return ds, values, modes


@settings(max_examples=150, deadline=None)
@given(records())
def test_any_disclosure_verifies(record: tuple[Dataset, dict[str, Any], dict[str, str]]) -> None:
    ds, values, modes = record
    rc = commit_record(ds, values)
    items = disclose(ds, values, rc.salts, modes)
    expected = {n: values[n] if m == "full" else mask(n, values[n]) for n, m in modes.items()}
    assert verify_disclosure(items, rc.root, dataset=ds) == expected


@settings(max_examples=150, deadline=None)
@given(records(), st.data())
def test_any_changed_leaf_fails(record: tuple[Dataset, dict[str, Any], dict[str, str]], data: st.DataObject) -> None:
    ds, values, modes = record
    rc = commit_record(ds, values)
    items = disclose(ds, values, rc.salts, modes)
    i = data.draw(st.integers(0, len(items) - 1))
    item = dict(items[i])
    if "hash" in item:
        raw = bytearray(base64.b64decode(item["hash"]))
        raw[data.draw(st.integers(0, 31))] ^= 1 << data.draw(st.integers(0, 7))
        item["hash"] = base64.b64encode(bytes(raw)).decode()
    else:
        key = data.draw(st.sampled_from(["value", "salt", "form"]))
        if key == "value":
            item["value"] = f"{item['value']}x"
        elif key == "salt":
            item["salt"] = base64.b64encode(bytes(SALT_SIZE)).decode()
        else:
            item["form"] = FORMS[1 - FORMS.index(item["form"])]
    items[i] = item
    with pytest.raises(CommitmentMismatch):
        verify_disclosure(items, rc.root)


@settings(max_examples=60, deadline=None)
@given(records(), st.lists(st.dictionaries(NAMES, st.sampled_from(["full", "masked"])), max_size=3))
def test_disclosure_from_opened_leaves_is_disclose(
    record: tuple[Dataset, dict[str, Any], dict[str, str]], more: list[dict[str, str]]
) -> None:
    """One ``open_leaves`` serves every later disclosure of the version; each gets fresh items."""
    ds, values, modes = record
    rc = commit_record(ds, values)
    opened = open_leaves(ds, values, rc.salts)
    for wanted in [modes, *({n: m for n, m in w.items() if n in ds.names} for w in more)]:
        items = disclose_opened(ds, opened, wanted)
        assert items == disclose(ds, values, rc.salts, wanted)
        items[0]["changed"] = True  # the caller's to change: the next disclosure is as before
        assert disclose_opened(ds, opened, wanted) == disclose(ds, values, rc.salts, wanted)
    with pytest.raises(UnknownField):
        disclose_opened(ds, opened, {"no_such_field": "full"})
    other = Dataset("t.other", OWNER, "t", ds.fields, "一般", True, "每日")
    with pytest.raises(DisclosureError, match=r"leaves are of dataset t\.d"):
        disclose_opened(other, opened, modes)
