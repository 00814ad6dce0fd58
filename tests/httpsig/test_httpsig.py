"""api.httpsig: round trips, the signature base's components, each rejection and its message."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.httpsig import (
    MAX_SKEW,
    Reason,
    SignatureRejected,
    Verified,
    check_content_digest,
    content_digest,
    request_hash,
    sign_request,
    signature_base,
    verify_request,
)
from keys.keyid import key_id
from ledger.errors import LedgerError

NOW = 1_767_225_600
URL = "https://data.example.gov.cn/shulian/v1/entries?dry_run=1"
BODY = b'{"purpose":"test"}'


class Actor:
    def __init__(self, seed: bytes) -> None:
        self.key = nacl.signing.SigningKey(hashlib.sha256(seed).digest())
        self.public = bytes(self.key.verify_key)
        self.key_id = key_id(self.public)


ALICE = Actor(b"alice")
BOB = Actor(b"bob")


def resolver(*actors: Actor) -> Callable[[str], bytes | None]:
    table = {a.key_id: a.public for a in actors}
    return table.get


def sign(
    *,
    method: str = "POST",
    url: str = URL,
    headers: dict[str, str] | None = None,
    body: bytes = BODY,
    actor: Actor = ALICE,
    **kw: Any,
) -> dict[str, str]:
    """The request's full headers after signing."""
    headers = {"Content-Type": "application/json"} if headers is None else headers
    added = sign_request(
        method=method, url=url, headers=headers, body=body, key=actor.key, key_id=actor.key_id, created=NOW, **kw
    )
    return {**headers, **added}


def verify(
    headers: Any,
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    now: int = NOW,
    keys: Callable[[str], bytes | None] | None = None,
    **kw: Any,
) -> Verified:
    return verify_request(
        method=method, url=url, headers=headers, body=body, resolve_key=keys or resolver(ALICE), now=now, **kw
    )


def rejected(headers: Any, **kw: Any) -> SignatureRejected:
    with pytest.raises(SignatureRejected) as caught:
        verify(headers, **kw)
    return caught.value


def parse_signature(headers: dict[str, str]) -> bytes:
    return base64.b64decode(headers["Signature"].split("=", 1)[1].strip(":"))


# --- round trips --------------------------------------------------------------------------


def test_round_trip() -> None:
    headers = sign(nonce="AAAAAAAAAAAAAAAAAAAAAA")
    verified = verify(headers)
    assert verified.key_id == ALICE.key_id
    assert verified.created == NOW
    assert verified.nonce == "AAAAAAAAAAAAAAAAAAAAAA"
    base = signature_base(
        method="POST", url=URL, headers=headers, signature_input=headers["Signature-Input"], label="sig1"
    )
    assert verified.request_hash == hashlib.sha256(base + parse_signature(headers)).hexdigest()
    assert verified.request_hash == request_hash(base, parse_signature(headers))


def test_emitted_headers_have_the_documented_shape() -> None:
    headers = sign(nonce="AAAAAAAAAAAAAAAAAAAAAA")
    assert headers["Content-Digest"] == content_digest(BODY)
    assert headers["Signature-Input"] == (
        'sig1=("@method" "@target-uri" "content-digest" "content-type")'
        f';created={NOW};keyid="{ALICE.key_id}";alg="ed25519";nonce="AAAAAAAAAAAAAAAAAAAAAA";tag="shulian"'
    )
    assert headers["Signature"].startswith("sig1=:") and headers["Signature"].endswith(":")
    assert len(parse_signature(headers)) == 64


def test_bodyless_request_covers_the_digest_of_the_empty_body() -> None:
    headers = sign(method="GET", url="https://h.example/v1/log/key", headers={}, body=b"")
    assert headers["Content-Digest"] == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    assert '("@method" "@target-uri" "content-digest")' in headers["Signature-Input"]
    verify(headers, method="GET", url="https://h.example/v1/log/key", body=b"")


def test_fresh_nonces_make_distinct_requests() -> None:
    first, second = verify(sign()), verify(sign())
    assert first.nonce != second.nonce
    assert first.request_hash != second.request_hash
    assert len(base64.urlsafe_b64decode(first.nonce + "==")) >= 16


def test_default_created_is_now() -> None:
    added = sign_request(method="GET", url=URL, headers={}, body=b"", key=ALICE.key, key_id=ALICE.key_id)
    assert abs(verify(added, method="GET", body=b"", now=int(time.time())).created - time.time()) < 5


def test_extra_components_are_covered() -> None:
    components = ("@method", "@target-uri", "@authority", "@path", "@query", "content-digest", "x-purpose")
    headers = sign(headers={"X-Purpose": "audit"}, components=components)
    verify(headers)
    assert rejected({**headers, "X-Purpose": "marketing"}).reason == Reason.BAD_SIGNATURE


def test_an_existing_content_digest_is_replaced() -> None:
    headers = sign(headers={"content-digest": "sha-256=:AAAA:", "Content-Type": "application/json"})
    verify({k: v for k, v in headers.items() if k != "content-digest"})


# --- header names and values ---------------------------------------------------------------


@pytest.mark.parametrize("transform", [str.lower, str.upper, str.title])
def test_header_names_are_case_insensitive(transform: Callable[[str], str]) -> None:
    headers = sign()
    verify({transform(k): v for k, v in headers.items()})
    verify([(transform(k), v) for k, v in headers.items()])


def test_field_values_are_trimmed_and_lines_joined() -> None:
    base = signature_base(
        method="GET",
        url="https://h.example/",
        headers=[("Accept", "  text/plain "), ("X-A", "1"), ("accept", "application/json\t")],
        signature_input='s=("accept")',
        label="s",
    )
    assert base == b'"accept": text/plain, application/json\n"@signature-params": ("accept")'


def test_obsolete_line_folding_becomes_one_space() -> None:
    base = signature_base(
        method="GET", url="https://h.example/", headers={"X-A": "a\r\n  b"}, signature_input='s=("x-a")', label="s"
    )
    assert base.startswith(b'"x-a": a b\n')


def test_a_newline_cannot_smuggle_a_line_into_the_base() -> None:
    with pytest.raises(ValueError, match="control"):
        signature_base(
            method="GET",
            url="https://h.example/",
            headers={"X-A": 'a\n"@method": GET'},
            signature_input='s=("x-a")',
            label="s",
        )


# --- derived components -----------------------------------------------------------------------


def derived(url: str, *components: str, method: str = "GET") -> str:
    inner = "(" + " ".join(f'"{c}"' for c in components) + ")"
    base = signature_base(method=method, url=url, headers={}, signature_input=f"s={inner}", label="s")
    return base.decode().rsplit("\n", 1)[0]


def test_derived_components() -> None:
    assert derived("https://Example.COM:443/a%2Fb/c?x=1&y=%20", "@method", "@target-uri", "@authority") == (
        '"@method": GET\n"@target-uri": https://example.com/a%2Fb/c?x=1&y=%20\n"@authority": example.com'
    )
    assert derived("http://h.example:8080/p?q", "@scheme", "@authority", "@path", "@query", "@request-target") == (
        '"@scheme": http\n"@authority": h.example:8080\n"@path": /p\n"@query": ?q\n"@request-target": /p?q'
    )
    assert derived("https://h.example", "@path", "@query", "@target-uri") == (
        '"@path": /\n"@query": ?\n"@target-uri": https://h.example/'
    )
    assert derived("http://h.example:80/", "@authority") == '"@authority": h.example'
    assert derived("https://[::1]:8443/", "@authority") == '"@authority": [::1]:8443'


def test_method_is_not_case_folded() -> None:
    # RFC 9421 §2.2.1: no transformation of the method's case, so "post" and "POST" differ.
    assert derived("https://h.example/", "@method", method="post") == '"@method": post'
    headers = sign(method="post")
    assert rejected(headers, method="POST").reason == Reason.BAD_SIGNATURE


def test_equal_uris_verify() -> None:
    headers = sign(url="HTTPS://Data.Example.gov.cn:443/shulian/v1/entries?dry_run=1")
    verify(headers, url=URL)


@pytest.mark.parametrize(
    "url",
    [
        "/v1/entries",
        "ftp://h.example/x",
        "https://user:pw@h.example/x",
        "https://h.example/x#frag",
        "https://h.example/a b",
        "https://h.example/é",
    ],
)
def test_unusable_target_uris(url: str) -> None:
    with pytest.raises(ValueError):
        derived(url, "@target-uri")
    with pytest.raises(ValueError):
        sign(url=url)


def test_unsupported_component_identifiers() -> None:
    for inner in ['("@status")', '("@query-param";name="x")', '("content-type";sf)', '("Content-Type")', "(ct)"]:
        with pytest.raises(ValueError):
            signature_base(
                method="GET",
                url="https://h.example/",
                headers={"content-type": "a"},
                signature_input=f"s={inner}",
                label="s",
            )


# --- rejections: one per reason, with the message a person can act on -------------------------


def test_rejection_is_a_ledger_error_with_401() -> None:
    error = rejected({})
    assert isinstance(error, LedgerError)
    assert (error.status, error.title) == (401, "Request signature rejected")
    assert error.reason == Reason.MISSING
    assert str(error) == "missing Signature-Input header"


def test_missing_signature() -> None:
    headers = sign()
    del headers["Signature"]
    assert str(rejected(headers)) == "missing Signature header"


def test_tampered_body() -> None:
    error = rejected(sign(), body=b'{"purpose":"other"}')
    assert error.reason == Reason.CONTENT_DIGEST
    assert str(error).startswith("content digest mismatch: sha-256 of the body is :")
    assert error.found == ":" + base64.b64encode(hashlib.sha256(BODY).digest()).decode() + ":"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("PUT", URL),
        ("POST", URL.replace("/entries", "/records")),
        ("POST", URL.replace("dry_run=1", "dry_run=0")),
        ("POST", URL.split("?")[0]),
    ],
)
def test_tampered_method_path_query(method: str, url: str) -> None:
    error = rejected(sign(), method=method, url=url)
    assert error.reason == Reason.BAD_SIGNATURE
    assert "does not verify under key " + ALICE.key_id in str(error)


def test_missing_component() -> None:
    headers = sign(components=("@method", "@target-uri", "content-digest"))
    headers["Signature-Input"] = headers["Signature-Input"].replace(' "@target-uri"', "")
    error = rejected(headers)
    assert error.reason == Reason.NOT_COVERED
    assert str(error) == "signature 'sig1' does not cover '@target-uri' (covers (\"@method\" \"content-digest\"))"


def test_wrong_key() -> None:
    headers = sign(actor=BOB)
    error = rejected(headers)
    assert (error.reason, str(error)) == (Reason.UNKNOWN_KEY, f"unknown key {BOB.key_id}")
    forged = dict(headers)
    forged["Signature-Input"] = headers["Signature-Input"].replace(BOB.key_id, ALICE.key_id)
    assert rejected(forged, keys=resolver(ALICE, BOB)).reason == Reason.BAD_SIGNATURE


def test_stale_and_future_created() -> None:
    headers = sign()
    verify(headers, now=NOW + MAX_SKEW)
    verify(headers, now=NOW - MAX_SKEW)
    stale = rejected(headers, now=NOW + 3600)
    assert (stale.reason, str(stale)) == (Reason.STALE, f"created {NOW} is 3600s old (allowed clock skew 300s)")
    future = rejected(headers, now=NOW - 301)
    assert (future.reason, str(future)) == (
        Reason.FUTURE,
        f"created {NOW} is 301s in the future (allowed clock skew 300s)",
    )
    verify(headers, now=NOW + 3600, max_skew=3600)


def test_expires() -> None:
    headers = {"Content-Digest": content_digest(BODY)}
    inner = (
        f'("@method" "@target-uri" "content-digest");created={NOW};expires={NOW + 60};'
        f'keyid="{ALICE.key_id}";alg="ed25519";nonce="AAAAAAAAAAAAAAAAAAAAAA";tag="shulian"'
    )
    headers["Signature-Input"] = f"sig1={inner}"
    base = signature_base(
        method="POST", url=URL, headers=headers, signature_input=headers["Signature-Input"], label="sig1"
    )
    headers["Signature"] = "sig1=:" + base64.b64encode(ALICE.key.sign(base).signature).decode() + ":"
    verify(headers, now=NOW + 60)
    error = rejected(headers, now=NOW + 61)
    assert (error.reason, str(error)) == (Reason.EXPIRED, f"signature 'sig1' expired at {NOW + 60}, 1s ago")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("Signature-Input", "sig1", "malformed Signature-Input: 'sig1' is not an inner list"),
        (
            "Signature-Input",
            "Sig1=()",
            "malformed Signature-Input: expected a key (lowercase letter or '*') at offset 0",
        ),
        ("Signature-Input", "sig1=(),", "malformed Signature-Input: trailing ',' at offset 8"),
        ("Signature-Input", 'sig1=("@method"', "malformed Signature-Input: unterminated inner list at offset 15"),
        ("Signature-Input", 'sig1=("a\\x")', "malformed Signature-Input: bad escape in string at offset 9"),
        ("Signature", "sig1=:AAA:", "malformed Signature: byte sequence is not base64 with padding at offset 6"),
        ("Signature", "sig1=:AAAA", "malformed Signature: unterminated byte sequence at offset 6"),
        ("Signature", "sig1=12345678901234567", "malformed Signature: integer with more than 15 digits at offset 21"),
        ("Signature", "sig1=?2", "malformed Signature: expected ?0 or ?1 at offset 6"),
    ],
)
def test_junk_headers(field: str, value: str, message: str) -> None:
    headers = sign()
    headers[field] = value
    error = rejected(headers)
    assert (error.reason, str(error)) == (Reason.MALFORMED, message)


def test_duplicate_labels() -> None:
    headers = sign()
    twice = [*headers.items(), ("Signature-Input", headers["Signature-Input"])]
    error = rejected(twice)
    assert (error.reason, str(error)) == (Reason.MALFORMED, "malformed Signature-Input: label 'sig1' appears twice")


def test_choosing_among_several_signatures() -> None:
    ours = sign()
    theirs = sign(label="sig2")
    both = {
        **ours,
        "Signature-Input": ours["Signature-Input"] + ", " + theirs["Signature-Input"],
        "Signature": ours["Signature"] + ", " + theirs["Signature"],
    }
    error = rejected(both)
    assert (error.reason, str(error)) == (Reason.PROFILE, "more than one signature is tagged 'shulian' (sig1, sig2)")
    untagged = {
        **ours,
        "Signature-Input": 'a=("@method");keyid="k", b=("@method");tag="other"',
        "Signature": "a=:AAAA:, b=:AAAA:",
    }
    assert str(rejected(untagged)) == "none of the signatures (a, b) is tagged 'shulian'"


def test_profile_parameters() -> None:
    headers = sign()
    for old, new, message in [
        (';tag="shulian"', "", "signature 'sig1' has no 'tag' parameter"),
        (';tag="shulian"', ";tag=shulian", "signature 'sig1' has tag shulian; Shulian requires 'shulian'"),
        (f";created={NOW}", f';created="{NOW}"', "signature 'sig1': created is not an integer"),
        (';alg="ed25519"', ";alg=ed25519", "signature 'sig1' has alg ed25519; Shulian requires 'ed25519'"),
    ]:
        changed = {**headers, "Signature-Input": headers["Signature-Input"].replace(old, new)}
        assert str(rejected(changed)) == message


def test_check_content_digest_alone() -> None:
    check_content_digest({"content-digest": content_digest(b"x")}, b"x")
    with pytest.raises(SignatureRejected, match="missing Content-Digest header"):
        check_content_digest({}, b"x")


# --- sign_request refuses what the verifier would refuse --------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"key_id": BOB.key_id}, "is not the id of this key"),
        ({"label": "Sig"}, "not a structured-field key"),
        ({"nonce": "c2hvcnQ"}, "nonce has 5 bytes"),
        ({"nonce": "not base64!"}, "is not base64url"),
        ({"components": ("@method", "content-digest")}, "must include @target-uri"),
        ({"components": ("@method", "@target-uri", "content-digest", "x-absent")}, "'x-absent' is not in the request"),
        ({"method": "GET /"}, "not an HTTP method token"),
    ],
)
def test_sign_request_refuses(kw: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "method": "POST",
        "url": URL,
        "headers": {},
        "body": b"",
        "key": ALICE.key,
        "key_id": ALICE.key_id,
        **kw,
    }
    with pytest.raises(ValueError, match=message):
        sign_request(**args)


# --- robustness and purity ----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=80), st.booleans())
def test_any_junk_gives_a_rejection_never_a_crash(junk: str, in_input: bool) -> None:
    headers = sign()
    headers["Signature-Input" if in_input else "Signature"] = junk
    with pytest.raises(SignatureRejected):
        verify(headers)


def test_module_imports_no_web_framework() -> None:
    code = (
        "import sys, api.httpsig; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'httpx', 'sqlalchemy'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
