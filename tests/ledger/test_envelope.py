"""Envelopes: signing, parsing and every way parse_envelope refuses leaf bytes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.keyid import is_key_id, key_id
from ledger.canonical import canonical_bytes
from ledger.envelope import MAX_ENTRY_BYTES, parse_envelope, sign_envelope, signed_bytes, verify_ed25519
from ledger.errors import CanonicalError, EnvelopeError, LedgerError, SignatureError
from tests.support import fixed_key

KEY = fixed_key("envelope")
TS = "2024-06-01T12:00:00.123456Z"
BODY = {"dataset": "ds-1", "record": "r-1", "subject": "s", "commitment": "AAAA"}


def good_leaf() -> bytes:
    return sign_envelope(KEY, "record.commit", BODY, ts=TS)


def fields() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(good_leaf())
    return value


def resign(value: dict[str, Any]) -> bytes:
    """Canonical bytes of ``value`` with a fresh valid signature over it without ``sig``."""
    unsigned = {k: v for k, v in value.items() if k != "sig"}
    sig = KEY.sign(rfc8785.dumps(unsigned)).signature
    return rfc8785.dumps({**value, "sig": base64.b64encode(sig).decode()})


def test_sign_then_parse_round_trip() -> None:
    leaf = good_leaf()
    env = parse_envelope(leaf)
    assert (env.type, env.ts, env.actor, env.body) == ("record.commit", TS, key_id(bytes(KEY.verify_key)), BODY)
    assert env.leaf == leaf == canonical_bytes(json.loads(leaf))
    assert env.time.microsecond == 123456
    env.verify_signature(bytes(KEY.verify_key))
    # the signature covers the canonical envelope without "sig"
    unsigned = {k: v for k, v in json.loads(leaf).items() if k != "sig"}
    assert env.signed_bytes() == rfc8785.dumps(unsigned)
    verify_ed25519(bytes(KEY.verify_key), rfc8785.dumps(unsigned), env.sig)


def test_key_id_is_first_16_bytes_of_sha256_hex() -> None:
    import hashlib

    pub = bytes(KEY.verify_key)
    assert key_id(pub) == hashlib.sha256(pub).digest()[:16].hex()
    assert is_key_id(key_id(pub))
    for bad in (key_id(pub).upper(), key_id(pub)[:-1], 5, None, key_id(pub) + "0"):
        assert not is_key_id(bad)
    with pytest.raises(ValueError):
        key_id(pub[:31])


def test_signature_by_another_key_fails() -> None:
    env = parse_envelope(good_leaf())
    with pytest.raises(SignatureError):
        env.verify_signature(bytes(fixed_key("someone else").verify_key))
    with pytest.raises(SignatureError):
        env.verify_signature(b"short")


def test_tampered_body_fails_the_signature_but_parses() -> None:
    value = fields()
    value["body"]["record"] = "r-2"
    env = parse_envelope(rfc8785.dumps(value))
    with pytest.raises(SignatureError):
        env.verify_signature(bytes(KEY.verify_key))


# -- refusals ------------------------------------------------------------------------------------------


def _mutations() -> list[Any]:
    f = fields()
    sig = base64.b64decode(f["sig"])
    cases: list[tuple[str, bytes, type[LedgerError]]] = [
        ("space after colon", json.dumps(f, sort_keys=True, separators=(",", ": ")).encode(), CanonicalError),
        ("keys unsorted", json.dumps(dict(reversed(f.items())), separators=(",", ":")).encode(), CanonicalError),
        ("trailing newline", good_leaf() + b"\n", CanonicalError),
        (
            "ascii-escaped",
            json.dumps(f | {"body": {"名": "值"}}, sort_keys=True, separators=(",", ":")).encode(),
            CanonicalError,
        ),
        ("duplicate key", good_leaf().replace(b'{"actor"', b'{"actor":"x","actor"', 1), CanonicalError),
        ("float in body", rfc8785.dumps(f | {"body": {"n": 1.5}}), CanonicalError),
        ("big int in body", good_leaf().replace(b'"record":"r-1"', b'"record":9007199254740992'), CanonicalError),
        ("not UTF-8", good_leaf().replace(b"ds-1", b"ds-\xff"), CanonicalError),
        ("extra field", resign(f | {"extra": True}), EnvelopeError),
        ("extra field seq", resign(f | {"seq": 1}), EnvelopeError),
        ("missing body", resign({k: v for k, v in f.items() if k != "body"}), EnvelopeError),
        ("missing sig", rfc8785.dumps({k: v for k, v in f.items() if k != "sig"}), EnvelopeError),
        ("array", rfc8785.dumps([f]), EnvelopeError),
        ("string", rfc8785.dumps("entry"), EnvelopeError),
        ("version 2", resign(f | {"v": 2}), EnvelopeError),
        ("version 0", resign(f | {"v": 0}), EnvelopeError),
        ("version true", resign(f | {"v": True}), EnvelopeError),
        ("version string", resign(f | {"v": "1"}), EnvelopeError),
        ("version null", resign(f | {"v": None}), EnvelopeError),
        ("unknown type", resign(f | {"type": "record.delete"}), EnvelopeError),
        ("type not a string", resign(f | {"type": ["record.commit"]}), EnvelopeError),
        ("ts without fraction", resign(f | {"ts": "2024-06-01T12:00:00Z"}), EnvelopeError),
        ("ts millis", resign(f | {"ts": "2024-06-01T12:00:00.123Z"}), EnvelopeError),
        ("ts lowercase z", resign(f | {"ts": "2024-06-01T12:00:00.123456z"}), EnvelopeError),
        ("ts offset", resign(f | {"ts": "2024-06-01T12:00:00.123456+08:00"}), EnvelopeError),
        ("ts impossible date", resign(f | {"ts": "2024-02-30T12:00:00.000000Z"}), EnvelopeError),
        ("ts number", resign(f | {"ts": 1717243200}), EnvelopeError),
        ("actor uppercase", resign(f | {"actor": f["actor"].upper()}), EnvelopeError),
        ("actor short", resign(f | {"actor": f["actor"][:-2]}), EnvelopeError),
        ("actor number", resign(f | {"actor": 12}), EnvelopeError),
        ("body array", resign(f | {"body": [1]}), EnvelopeError),
        ("body null", resign(f | {"body": None}), EnvelopeError),
        ("body string", resign(f | {"body": "{}"}), EnvelopeError),
        ("sig not base64", rfc8785.dumps(f | {"sig": "*" * 88}), EnvelopeError),
        (
            "sig base64url",
            rfc8785.dumps(f | {"sig": base64.urlsafe_b64encode(b"\xfb\xff" * 32).decode()}),
            EnvelopeError,
        ),
        ("sig without padding", rfc8785.dumps(f | {"sig": f["sig"].rstrip("=")}), EnvelopeError),
        ("sig 63 bytes", rfc8785.dumps(f | {"sig": base64.b64encode(sig[:63]).decode()}), EnvelopeError),
        ("sig 65 bytes", rfc8785.dumps(f | {"sig": base64.b64encode(sig + b"\0").decode()}), EnvelopeError),
        ("sig hex", rfc8785.dumps(f | {"sig": sig.hex()}), EnvelopeError),
        ("sig number", rfc8785.dumps(f | {"sig": 0}), EnvelopeError),
        ("sig null", rfc8785.dumps(f | {"sig": None}), EnvelopeError),
        ("sig with whitespace", rfc8785.dumps(f | {"sig": f["sig"][:40] + "\n" + f["sig"][40:]}), EnvelopeError),
        ("too large", resign(f | {"body": {"blob": "x" * MAX_ENTRY_BYTES}}), EnvelopeError),
    ]
    return [pytest.param(leaf, err, id=name) for name, leaf, err in cases]


@pytest.mark.parametrize(("leaf", "error"), _mutations())
def test_parse_refuses(leaf: bytes, error: type[LedgerError]) -> None:
    with pytest.raises(error):
        parse_envelope(leaf)


def test_refusals_are_ledger_errors_with_a_status() -> None:
    for param in _mutations():
        leaf = param.values[0]
        with pytest.raises(LedgerError) as info:
            parse_envelope(leaf)
        assert info.value.status == 422
        assert str(info.value)


nested = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["ts", "sig", "v", "type", "actor", "body", "a", "z", ',"ts":"']), inner),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["ts", "sig", "x", "body", "目录", ',"ts":"']), nested, max_size=5))
def test_signed_leaf_is_the_canonical_envelope(body: dict[str, Any]) -> None:
    """sign_envelope inserts the signature into the signed bytes (``with_signature``): exactly the RFC 8785
    bytes of the whole envelope, whatever members named like the envelope's the body holds."""
    leaf = sign_envelope(KEY, "record.commit", body, ts=TS)
    value = json.loads(leaf)
    assert leaf == rfc8785.dumps(value)
    assert value["body"] == body and set(value) == {"v", "type", "ts", "actor", "body", "sig"}
    env = parse_envelope(leaf)
    env.verify_signature(bytes(KEY.verify_key))
    assert signed_bytes(env) == env.signed_bytes()
