"""The fixed vectors in ``tests/vectors/rfc9421*.json``, walked case by case."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing
import pytest

from api.httpsig import SignatureRejected, check_content_digest, sign_request, signature_base, verify_request
from tests.httpsig import generate

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text("utf-8"))
    return data


ED25519 = load("rfc9421_ed25519.json")
DIGEST = load("rfc9421_content_digest.json")
SHULIAN = load("rfc9421_shulian.json")


def headers_of(case: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in case["headers"]]


def test_vector_files_are_what_the_generator_writes() -> None:
    assert generate.stale() == []


def test_rfc9421_keys_match() -> None:
    key = ED25519["key"]
    signing = nacl.signing.SigningKey(base64.b64decode(key["seed"]))
    assert bytes(signing.verify_key) == base64.b64decode(key["public_key"])


@pytest.mark.parametrize("case", ED25519["cases"], ids=lambda c: c["desc"])
def test_rfc9421_b26(case: dict[str, Any]) -> None:
    key = ED25519["key"]
    public = nacl.signing.VerifyKey(base64.b64decode(key["public_key"]))
    label, _, value = case["signature"].partition("=")
    assert label == case["label"]
    signature = base64.b64decode(value.strip(":"))
    base = signature_base(
        method=case["method"],
        url=case["url"],
        headers=headers_of(case),
        signature_input=case["signature_input"],
        label=case["label"],
    )
    if case["expect"] == "ok":
        assert base.decode("ascii") == ED25519["signature_base"]
        public.verify(base, signature)
        # Ed25519 is deterministic: the RFC's private key gives the RFC's signature again.
        assert nacl.signing.SigningKey(base64.b64decode(key["seed"])).sign(base).signature == signature
    else:
        with pytest.raises((nacl.exceptions.BadSignatureError, ValueError)):  # ValueError: not 64 bytes
            public.verify(base, signature)


@pytest.mark.parametrize("case", DIGEST["cases"], ids=lambda c: c["desc"])
def test_content_digest_vectors(case: dict[str, Any]) -> None:
    headers = {"Content-Digest": case["content_digest"]}
    body = case["body"].encode("utf-8")
    if case["expect"] == "ok":
        check_content_digest(headers, body)
    else:
        with pytest.raises(SignatureRejected) as caught:
            check_content_digest(headers, body)
        assert caught.value.reason == case["expect"], str(caught.value)


def shulian_keys() -> dict[str, bytes]:
    return {k["key_id"]: base64.b64decode(k["public_key"]) for k in SHULIAN["keys"]}


@pytest.mark.parametrize("case", SHULIAN["cases"], ids=lambda c: c["desc"])
def test_shulian_verify(case: dict[str, Any]) -> None:
    keys = shulian_keys()

    def verify() -> Any:
        return verify_request(
            method=case["method"],
            url=case["url"],
            headers=headers_of(case),
            body=case["body"].encode("utf-8"),
            resolve_key=keys.get,
            now=case["now"],
        )

    if case["expect"] == "ok":
        verified = verify()
        assert (verified.key_id, verified.nonce, verified.request_hash) == (
            case["key_id"],
            case["nonce"],
            case["request_hash"],
        )
    else:
        with pytest.raises(SignatureRejected) as caught:
            verify()
        assert caught.value.reason == case["expect"], str(caught.value)


def test_shulian_sign() -> None:
    sign = SHULIAN["sign"]
    added = sign_request(
        method=sign["method"],
        url=sign["url"],
        headers=headers_of(sign),
        body=sign["body"].encode("utf-8"),
        key=nacl.signing.SigningKey(base64.b64decode(sign["seed"])),
        key_id=sign["key_id"],
        created=sign["created"],
        nonce=sign["nonce"],
    )
    assert added == sign["expect_headers"]
    base = signature_base(
        method=sign["method"],
        url=sign["url"],
        headers=[*headers_of(sign), *added.items()],
        signature_input=added["Signature-Input"],
        label="sig1",
    )
    assert base.decode("ascii") == sign["signature_base"]
