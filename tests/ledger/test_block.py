"""Block headers: sign, verify, parse, digest (the ``prev`` link) and the clock-skew rule."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import rfc8785

from ledger.block import (
    GENESIS_PREV,
    BlockError,
    BlockHeader,
    entry_time_fits,
    parse_header,
    sign_header,
)
from tests.support import fixed_key

LOG = fixed_key("log")
ROOT = hashlib.sha256(b"root").digest()
TIME = "2024-06-01T12:00:00.000000Z"


def header(**overrides: Any) -> BlockHeader:
    args: dict[str, Any] = {
        "height": 0,
        "tree_size": 2,
        "root": ROOT,
        "prev": GENESIS_PREV,
        "first_seq": 0,
        "time": TIME,
    }
    args.update(overrides)
    return sign_header(LOG, **args)


def test_json_form_matches_the_contract() -> None:
    h = header()
    j = h.to_json()
    assert list(j) == ["height", "tree_size", "root", "prev", "first_seq", "time", "sig"]
    assert j["root"] == base64.b64encode(ROOT).decode()
    assert j["prev"] == base64.b64encode(bytes(32)).decode()
    # sig: Ed25519 by the log key over the canonical header without sig
    unsigned = {k: v for k, v in j.items() if k != "sig"}
    LOG.verify_key.verify(rfc8785.dumps(unsigned), base64.b64decode(j["sig"]))
    # digest: SHA-256 of the canonical header, sig included
    assert h.digest() == hashlib.sha256(rfc8785.dumps(j)).digest()


def test_sign_verify_parse_round_trip() -> None:
    h = header(height=5, tree_size=100, first_seq=90, prev=hashlib.sha256(b"p").digest())
    h.verify_signature(bytes(LOG.verify_key))
    again = parse_header(json.loads(json.dumps(h.to_json())))
    assert again == h
    again.verify_signature(bytes(LOG.verify_key))


def test_unknown_fields_are_ignored_when_parsing() -> None:
    h = header()
    assert parse_header({**h.to_json(), "cosigners": ["w1"]}) == h


def test_wrong_key_fails() -> None:
    with pytest.raises(BlockError):
        header().verify_signature(bytes(fixed_key("not the log").verify_key))


@pytest.mark.parametrize(
    "field, value",
    [
        ("height", 1),
        ("tree_size", 3),
        ("root", hashlib.sha256(b"other").digest()),
        ("prev", hashlib.sha256(b"other").digest()),
        ("first_seq", 1),
        ("time", "2024-06-01T12:00:00.000001Z"),
    ],
)
def test_any_changed_field_breaks_the_signature_and_the_digest(field: str, value: Any) -> None:
    h = header()
    changed = BlockHeader(**{**{f: getattr(h, f) for f in h.__slots__}, field: value})
    with pytest.raises(BlockError):
        changed.verify_signature(bytes(LOG.verify_key))
    assert changed.digest() != h.digest()


def test_digest_covers_the_signature() -> None:
    h = header()
    other_sig = BlockHeader(h.height, h.tree_size, h.root, h.prev, h.first_seq, h.time, bytes(64))
    assert other_sig.digest() != h.digest()


def _stray_bits(b64: str) -> str:
    """The same bytes in non-canonical base64: set the unused low bits of the last character."""
    assert b64.endswith("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = b64.rstrip("=")
    last = alphabet.index(body[-1]) | (0b1111 if b64.endswith("==") else 0b11)
    return body[:-1] + alphabet[last] + b64[len(body) :]


def _bad_headers() -> list[Any]:
    j = header().to_json()
    cases = {
        "not an object": [j],
        "missing sig": {k: v for k, v in j.items() if k != "sig"},
        "missing root": {k: v for k, v in j.items() if k != "root"},
        "negative height": {**j, "height": -1},
        "height bool": {**j, "height": True},
        "height string": {**j, "height": "0"},
        "tree_size float": {**j, "tree_size": 2.0},
        "first_seq null": {**j, "first_seq": None},
        "root 31 bytes": {**j, "root": base64.b64encode(ROOT[:31]).decode()},
        "root not base64": {**j, "root": "%%%"},
        "root hex": {**j, "root": ROOT.hex()},
        "prev 33 bytes": {**j, "prev": base64.b64encode(bytes(33)).decode()},
        "sig 63 bytes": {**j, "sig": base64.b64encode(bytes(63)).decode()},
        "sig number": {**j, "sig": 1},
        "root with padding bits set": {**j, "root": _stray_bits(j["root"])},
        "sig with padding bits set": {**j, "sig": _stray_bits(j["sig"])},
        "time without fraction": {**j, "time": "2024-06-01T12:00:00Z"},
        "time number": {**j, "time": 0},
    }
    return [pytest.param(v, id=k) for k, v in cases.items()]


@pytest.mark.parametrize("value", _bad_headers())
def test_parse_refuses(value: Any) -> None:
    with pytest.raises(BlockError):
        parse_header(value)


def test_entry_time_within_five_minutes_of_the_block() -> None:
    assert entry_time_fits("2024-06-01T12:05:00.000000Z", TIME)
    assert entry_time_fits("2024-06-01T11:55:00.000000Z", TIME)
    assert not entry_time_fits("2024-06-01T12:05:00.000001Z", TIME)
    assert not entry_time_fits("2024-06-01T11:54:59.999999Z", TIME)
