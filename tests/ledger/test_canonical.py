"""Canonical JSON: the fast path equals the rfc8785 reference on every value of the envelope subset."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import (
    MAX_DEPTH,
    MAX_SAFE_INT,
    _parse_canonical_strict,
    canonical_bytes,
    canonical_bytes_reference,
    parse_canonical,
)
from ledger.errors import CanonicalError

# Text drawn from every plane, weighted towards the characters where code point order and UTF-16
# order disagree (astral vs. U+E000..U+FFFF) and towards the escapes.
tricky = st.sampled_from(["\ue000", "\uf8ff", "\uffff", "\U00010000", "😀", "\U0010ffff", "\x00", "\x1f", '"', "\\"])
chars = st.one_of(st.characters(exclude_categories=["Cs"]), tricky)
texts = st.text(chars, max_size=12)
ints = st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
scalars = st.one_of(st.none(), st.booleans(), ints, texts)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(texts, inner, max_size=6)),
    max_leaves=30,
)

SETTINGS = settings(max_examples=300, deadline=None)


@SETTINGS
@given(values)
def test_fast_path_equals_reference(value: Any) -> None:
    fast = canonical_bytes(value)
    assert fast == canonical_bytes_reference(value) == rfc8785.dumps(value)
    assert parse_canonical(fast) == value


@SETTINGS
@given(st.dictionaries(texts, scalars, min_size=2, max_size=8))
def test_keys_are_ordered_by_utf16_code_units(d: dict[str, Any]) -> None:
    order = list(json.loads(canonical_bytes(d)))
    assert order == sorted(d, key=lambda k: k.encode("utf-16-be"))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(min_value=MAX_SAFE_INT + 1), st.integers(max_value=-MAX_SAFE_INT - 1)))
def test_integers_beyond_2_53_are_refused(i: int) -> None:
    for fn in (canonical_bytes, canonical_bytes_reference):
        with pytest.raises(CanonicalError):
            fn({"n": [i]})
    with pytest.raises(CanonicalError):
        parse_canonical(str(i).encode())


@SETTINGS
@given(st.floats())
def test_floats_are_refused(x: float) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes([x])
    with pytest.raises(CanonicalError):
        canonical_bytes_reference({"x": x})


@pytest.mark.parametrize("value", [b"x", (1, 2), {1: "int key"}, {"a": {1, 2}}, object(), "lone \ud800 surrogate"])
def test_values_outside_the_subset_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalError):
        canonical_bytes(value)


def test_astral_key_takes_the_reference_path() -> None:
    # Python's sort_keys would put U+E000 first (code point order); RFC 8785 puts the astral key first.
    assert canonical_bytes({"\ue000": 1, "😀": 2}) == '{"😀":2,"\ue000":1}'.encode()
    nested = {"a": [{"\uffff": 0, "\U00010000": 1}]}
    assert canonical_bytes(nested) == rfc8785.dumps(nested)


def test_bool_is_not_an_integer() -> None:
    assert canonical_bytes([True, False, 1, 0]) == b"[true,false,1,0]"
    assert parse_canonical(b"[true,1]") == [True, 1]


def test_nesting_limit() -> None:
    def nest(depth: int) -> Any:
        v: Any = []
        for _ in range(depth):
            v = [v]
        return v

    canonical_bytes(nest(MAX_DEPTH))
    with pytest.raises(CanonicalError):
        canonical_bytes(nest(MAX_DEPTH + 1))
    with pytest.raises(CanonicalError):
        parse_canonical(b"[" * 5000 + b"]" * 5000)


@settings(max_examples=150, deadline=None)
@given(values)
def test_non_canonical_spellings_are_refused(value: Any) -> None:
    """Pretty-printed or ASCII-escaped spellings of a value parse only if they happen to be canonical."""
    canonical = canonical_bytes(value)
    for spelling in (
        json.dumps(value, indent=1, ensure_ascii=False).encode(),
        json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode(),
        json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True).encode(),
        canonical + b" ",
    ):
        if spelling == canonical:
            assert parse_canonical(spelling) == value
        else:
            with pytest.raises(CanonicalError):
                parse_canonical(spelling)


def test_parse_canonical_refuses_what_canonical_bytes_refuses() -> None:
    """The parser's fast path (no walk over the value) refuses exactly what the walk would."""
    for text in (b"1.5", b'{"a":[1.5]}', b"1e3", b"9007199254740992", b"[-9007199254740992]", b"NaN", b"[Infinity]"):
        with pytest.raises(CanonicalError):
            parse_canonical(text)
    assert parse_canonical(b"[9007199254740991,-9007199254740991]") == [MAX_SAFE_INT, -MAX_SAFE_INT]
    # Astral keys: UTF-16 order is canonical, code-point order (what Python sorts by) is not.
    assert parse_canonical('{"😀":2,"\ue000":1}'.encode()) == {"😀": 2, "\ue000": 1}
    with pytest.raises(CanonicalError):
        parse_canonical('{"\ue000":1,"😀":2}'.encode())
    deepest = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)  # nesting MAX_DEPTH below the top
    assert parse_canonical(deepest) is not None
    with pytest.raises(CanonicalError):
        parse_canonical(b"[" + deepest + b"]")
    with pytest.raises(CanonicalError):
        parse_canonical(b'["\\ud800"]')  # a lone surrogate never re-encodes


@pytest.mark.parametrize(
    "text",
    [b"1.0", b'{"a":1.0}', b"[1e+16]", b"[1e-7]", b'{"a":-0.5}', b"1.2345678901234568e+22", b"12345678901234567890123"],
)
def test_floats_as_orjson_writes_them_are_refused(text: bytes) -> None:
    """orjson reads and writes these back unchanged (or reads a huge integer as a float): refused all the same."""
    with pytest.raises(CanonicalError):
        parse_canonical(text)


def _strict(data: bytes) -> Any:
    try:
        return ("ok", _parse_canonical_strict(data))
    except CanonicalError:
        return ("refused", None)


def _either(data: bytes) -> Any:
    try:
        return ("ok", parse_canonical(data))
    except CanonicalError:
        return ("refused", None)


@settings(max_examples=400, deadline=None)
@given(values, st.integers(min_value=0), st.binary(max_size=3), st.integers(min_value=0, max_value=3))
def test_fast_parse_agrees_with_the_strict_parse(value: Any, at: int, insert: bytes, cut: int) -> None:
    """On canonical bytes and on bytes near them (a few changed), the fast path gives the strict verdict."""
    canonical = canonical_bytes(value)
    where = at % (len(canonical) + 1)
    mutated = canonical[:where] + insert + canonical[where + cut :]
    for data in (canonical, mutated):
        assert _either(data) == _strict(data)


def test_a_lone_surrogate_is_named() -> None:
    with pytest.raises(CanonicalError, match="lone surrogate"):
        canonical_bytes({"purpose": "x\ud800"})
