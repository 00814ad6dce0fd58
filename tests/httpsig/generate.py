"""Write ``tests/vectors/rfc9421*.json`` (run: ``.venv/bin/python -m tests.httpsig.generate``).

Nothing here is imported from ``api``: the RFC vectors are transcribed from RFC 9421 (Appendix B.1.4
key, B.2.6 request, signature base and signature; the test request of §2.5) and RFC 9530 (§2), and
the Shulian vectors are built by hand (f-strings for the signature base, PyNaCl for Ed25519, hashlib
for digests) following DESIGN.md §4 and the profile in ``api/httpsig.py``'s docstring. Ed25519 is
deterministic, so a second run writes the same bytes; ``--check`` says whether the files on disk are
what this script writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import nacl.signing

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sf_bytes(data: bytes) -> str:
    return f":{b64(data)}:"


# ---------------------------------------------------------------------------------------------
# RFC 9421 Appendix B.2.6, transcribed
# ---------------------------------------------------------------------------------------------

# B.1.4: test-key-ed25519 (PKCS#8 private key and SubjectPublicKeyInfo, PEM bodies)
RFC_PRIVATE_PEM = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF"
RFC_PUBLIC_PEM = "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs="
# B.2: the test request (HTTP/1.1 over TLS to example.com)
RFC_REQUEST: dict[str, Any] = {
    "method": "POST",
    "url": "https://example.com/foo?param=Value&Pet=dog",
    "headers": [
        ["Host", "example.com"],
        ["Date", "Tue, 20 Apr 2021 02:07:55 GMT"],
        ["Content-Type", "application/json"],
        [
            "Content-Digest",
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        ],
        ["Content-Length", "18"],
    ],
    "body": '{"hello": "world"}',
}
RFC_B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
RFC_B26_SIGNATURE = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
RFC_B26_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)


def rfc_key() -> tuple[bytes, bytes]:
    """(seed, public key) of test-key-ed25519: the last 32 bytes of each DER structure."""
    seed = base64.b64decode(RFC_PRIVATE_PEM)[-32:]
    public = base64.b64decode(RFC_PUBLIC_PEM)[-32:]
    if bytes(nacl.signing.SigningKey(seed).verify_key) != public:
        raise SystemExit("RFC 9421 B.1.4: the private and public keys do not match")
    return seed, public


def with_header(headers: list[list[str]], name: str, value: str) -> list[list[str]]:
    return [[n, value if n.lower() == name.lower() else v] for n, v in headers]


def rfc9421_ed25519() -> dict[str, Any]:
    seed, public = rfc_key()
    signature = base64.b64decode(RFC_B26_SIGNATURE.split("=", 1)[1].strip(":"))
    nacl.signing.VerifyKey(public).verify(RFC_B26_BASE.encode("ascii"), signature)  # the RFC is self-consistent
    flipped = bytearray(signature)
    flipped[0] ^= 0x01

    def case(desc: str, expect: str, **changes: Any) -> dict[str, Any]:
        request = {**RFC_REQUEST, **{k: v for k, v in changes.items() if k in RFC_REQUEST}}
        return {
            "desc": desc,
            **request,
            "label": "sig-b26",
            "signature_input": changes.get("signature_input", RFC_B26_INPUT),
            "signature": changes.get("signature", RFC_B26_SIGNATURE),
            "expect": expect,
        }

    return {
        "desc": "RFC 9421 Appendix B.2.6 (signing a request using ed25519) with the key test-key-ed25519 of B.1.4 "
        "(seed and public key are the last 32 bytes of the PEM bodies). The base is the generic RFC 9421 "
        "signature base for 'label' (no Shulian profile). 'ok': the base built from the request equals "
        "'signature_base' and the signature verifies (re-signing with the seed gives the same bytes, "
        "Ed25519 being deterministic); 'error': the signature must not verify over the base built from the request.",
        "source": "RFC 9421, Appendix B.1.4 and B.2.6",
        "key": {"keyid": "test-key-ed25519", "seed": b64(seed), "public_key": b64(public)},
        "signature_base": RFC_B26_BASE,
        "cases": [
            case("B.2.6 as published", "ok"),
            case("header names in other cases", "ok", headers=[[n.upper(), v] for n, v in RFC_REQUEST["headers"]]),
            case(
                "signature with its first bit flipped",
                "error",
                signature=f"sig-b26={sf_bytes(bytes(flipped))}",
            ),
            case("signature truncated to 63 bytes", "error", signature=f"sig-b26={sf_bytes(signature[:63])}"),
            case("method changed to PUT", "error", method="PUT"),
            case("path changed", "error", url="https://example.com/bar?param=Value&Pet=dog"),
            case("authority changed", "error", url="https://example.org/foo?param=Value&Pet=dog"),
            case(
                "content-type changed",
                "error",
                headers=with_header(RFC_REQUEST["headers"], "Content-Type", "text/plain"),
            ),
            case("created changed", "error", signature_input=RFC_B26_INPUT.replace("1618884473", "1618884474")),
        ],
    }


# RFC 9530 §2: the sha-512 example
RFC9530_SHA512 = "sha-512=:YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg==:"


def rfc9421_content_digest() -> dict[str, Any]:
    hello = '{"hello": "world"}'
    cases = [
        {
            "desc": "RFC 9530 §2: sha-512 example (the body: the 18 bytes of the JSON and an LF)",
            "body": hello + "\n",
            "content_digest": RFC9530_SHA512,
            "expect": "ok",
        },
        {
            "desc": "RFC 9421 test request (§2.5, Appendix B.2): sha-512 of the 18-byte body",
            "body": hello,
            "content_digest": RFC_REQUEST["headers"][3][1],
            "expect": "ok",
        },
        {
            "desc": "sha-256 of the same 18-byte body, the value RFC 9530's examples give for it",
            "body": hello,
            "content_digest": "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
            "expect": "ok",
        },
        {
            "desc": "both digests, both right",
            "body": hello,
            "content_digest": "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, " + RFC_REQUEST["headers"][3][1],
            "expect": "ok",
        },
        {
            "desc": "an unknown algorithm beside a right sha-256 is ignored",
            "body": hello,
            "content_digest": "unixsum=12345, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
            "expect": "ok",
        },
        {
            "desc": "the empty body (what a bodyless Shulian request carries)",
            "body": "",
            "content_digest": f"sha-256={sf_bytes(hashlib.sha256(b'').digest())}",
            "expect": "ok",
        },
        {
            "desc": "the 18-byte body against the digest of the 19-byte one",
            "body": hello,
            "content_digest": RFC9530_SHA512,
            "expect": "content-digest",
        },
        {
            "desc": "sha-256 right but sha-512 wrong: every digest given must match",
            "body": hello,
            "content_digest": "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, " + RFC9530_SHA512,
            "expect": "content-digest",
        },
        {
            "desc": "only an algorithm we do not support",
            "body": hello,
            "content_digest": "md5=:+thA//8pGVGk2VYuJkFNvA==:",
            "expect": "content-digest",
        },
        {"desc": "not a dictionary", "body": hello, "content_digest": "sha-256", "expect": "malformed"},
        {
            "desc": "old Digest syntax (RFC 3230), no colons",
            "body": hello,
            "content_digest": "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
            "expect": "malformed",
        },
        {
            "desc": "sha-256 given as a string, not a byte sequence",
            "body": hello,
            "content_digest": 'sha-256="X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="',
            "expect": "malformed",
        },
    ]
    for c in cases:  # check the "ok" ones independently
        if c["expect"] == "ok":
            body = c["body"].encode("utf-8")
            for member in c["content_digest"].split(", "):
                alg, _, value = member.partition("=")
                if alg in ("sha-256", "sha-512"):
                    want = sf_bytes(hashlib.new(alg.replace("-", ""), body).digest())
                    if value != want:
                        raise SystemExit(f"content digest vector wrong: {c['desc']}")
    return {
        "desc": "RFC 9530 Content-Digest: check 'body' (UTF-8) against the field value 'content_digest'. 'ok': "
        "every sha-256 and sha-512 digest given matches; otherwise the rejection reason (api.httpsig.Reason).",
        "source": "RFC 9530 §2; RFC 9421 §2.5 and Appendix B.2",
        "cases": cases,
    }


# ---------------------------------------------------------------------------------------------
# The Shulian profile, built by hand
# ---------------------------------------------------------------------------------------------

CREATED = 1767225600  # 2026-01-01T00:00:00Z
NONCE = base64.urlsafe_b64encode(hashlib.sha256(b"shulian rfc9421 vector nonce").digest()[:16]).decode().rstrip("=")
URL = "https://data.example.gov.cn/shulian/v1/entries?dry_run=1"
BODY = '{"purpose":"社保资格认证","subject":"s-0001"}'


def seed(name: str) -> bytes:
    return hashlib.sha256(f"shulian rfc9421 vector key {name}".encode()).digest()


def shulian_key_id(public: bytes) -> str:
    return hashlib.sha256(public).digest()[:16].hex()


class Signer:
    def __init__(self, name: str) -> None:
        self.key = nacl.signing.SigningKey(seed(name))
        self.public = bytes(self.key.verify_key)
        self.key_id = shulian_key_id(self.public)


def params(key_id: str, *, created: int = CREATED, nonce: str = NONCE, alg: str = "ed25519") -> str:
    return f';created={created};keyid="{key_id}";alg="{alg}";nonce="{nonce}";tag="shulian"'


def signed(
    signer: Signer,
    *,
    method: str = "POST",
    url: str = URL,
    body: str = BODY,
    content_type: str | None = "application/json",
    components: tuple[str, ...] | None = None,
    sig_params: str | None = None,
    label: str = "sig1",
    key_id: str | None = None,
) -> tuple[list[list[str]], str]:
    """(headers, signature base) of a request signed by hand."""
    data = body.encode("utf-8")
    digest = f"sha-256={sf_bytes(hashlib.sha256(data).digest())}"
    fields = {"content-digest": digest}
    headers = [["Content-Type", content_type]] if content_type else []
    if content_type:
        fields["content-type"] = content_type
    if components is None:
        components = ("@method", "@target-uri", "content-digest") + (("content-type",) if content_type else ())
    values = {"@method": method, "@target-uri": url, **fields}
    inner = "(" + " ".join(f'"{c}"' for c in components) + ")" + (sig_params or params(key_id or signer.key_id))
    base = "".join(f'"{c}": {values[c]}\n' for c in components) + f'"@signature-params": {inner}'
    signature = signer.key.sign(base.encode("ascii")).signature
    headers += [
        ["Content-Digest", digest],
        ["Signature-Input", f"{label}={inner}"],
        ["Signature", f"{label}={sf_bytes(signature)}"],
    ]
    return headers, base


def replace(headers: list[list[str]], name: str, value: str | None) -> list[list[str]]:
    """Headers with field ``name`` set to ``value`` (dropped if None)."""
    out = [[n, v] for n, v in headers if n.lower() != name.lower()]
    return out if value is None else [*out, [name, value]]


def get(headers: list[list[str]], name: str) -> str:
    return next(v for n, v in headers if n.lower() == name.lower())


def rfc9421_shulian() -> dict[str, Any]:
    a, b = Signer("A"), Signer("B")
    headers, base = signed(a)
    signature_b64 = get(headers, "Signature").split("=", 1)[1].strip(":")
    signature = base64.b64decode(signature_b64)
    request_hash = hashlib.sha256(base.encode("ascii") + signature).hexdigest()
    get_headers, get_base = signed(a, method="GET", url="https://data.example.gov.cn/shulian/v1/records/r-1", body="")
    get_hash = hashlib.sha256(get_base.encode("ascii") + base64.b64decode(get(get_headers, "Signature")[6:-1]))
    flipped = bytearray(signature)
    flipped[10] ^= 0x80

    def case(desc: str, expect: str, **over: Any) -> dict[str, Any]:
        out = {
            "desc": desc,
            "method": over.get("method", "POST"),
            "url": over.get("url", URL),
            "headers": over.get("headers", headers),
            "body": over.get("body", BODY),
            "now": over.get("now", CREATED + 30),
            "expect": expect,
        }
        if expect == "ok":
            out["key_id"], out["nonce"] = a.key_id, NONCE
            out["request_hash"] = over.get("request_hash", request_hash)
        return out

    foreign = [*headers]
    foreign = replace(foreign, "Signature-Input", get(headers, "Signature-Input") + ', other=("@method");keyid="x"')
    foreign = replace(foreign, "Signature", get(headers, "Signature") + ", other=:AAAA:")
    no_nonce = params(a.key_id).replace(f';nonce="{NONCE}"', "")
    short_nonce = base64.urlsafe_b64encode(b"12345678").decode().rstrip("=")
    cases = [
        case("the signed request", "ok"),
        case("header names in upper case", "ok", headers=[[n.upper(), v] for n, v in headers]),
        case(
            "header names in lower case, fields in another order",
            "ok",
            headers=[[n.lower(), v] for n, v in headers][::-1],
        ),
        case("created exactly max_skew (300 s) ago", "ok", now=CREATED + 300),
        case("created exactly max_skew (300 s) ahead", "ok", now=CREATED - 300),
        case(
            "a bodyless GET: the digest of the empty body",
            "ok",
            method="GET",
            url="https://data.example.gov.cn/shulian/v1/records/r-1",
            headers=get_headers,
            body="",
            request_hash=get_hash.hexdigest(),
        ),
        case("another application's signature beside ours is ignored", "ok", headers=foreign),
        case("body changed", "content-digest", body=BODY.replace("s-0001", "s-0002")),
        case(
            "body and Content-Digest changed together",
            "bad-signature",
            body="{}",
            headers=replace(headers, "Content-Digest", f"sha-256={sf_bytes(hashlib.sha256(b'{}').digest())}"),
        ),
        case("method changed", "bad-signature", method="PUT"),
        case("path changed", "bad-signature", url=URL.replace("/entries", "/records")),
        case("query changed", "bad-signature", url=URL.replace("dry_run=1", "dry_run=0")),
        case("host changed", "bad-signature", url=URL.replace("data.example.gov.cn", "evil.example")),
        case("scheme changed", "bad-signature", url=URL.replace("https:", "http:")),
        case("covered Content-Type changed", "bad-signature", headers=replace(headers, "Content-Type", "text/plain")),
        case(
            "signature bit flipped",
            "bad-signature",
            headers=replace(headers, "Signature", f"sig1={sf_bytes(bytes(flipped))}"),
        ),
        case(
            "signature truncated",
            "bad-signature",
            headers=replace(headers, "Signature", f"sig1={sf_bytes(signature[:-1])}"),
        ),
        case(
            "created changed in Signature-Input",
            "bad-signature",
            headers=replace(
                headers, "Signature-Input", get(headers, "Signature-Input").replace(str(CREATED), str(CREATED + 1))
            ),
        ),
        case("signed by key B, keyid says key A", "bad-signature", headers=signed(b, key_id=a.key_id)[0]),
        case("signed by key B, which is not registered", "unknown-key", headers=signed(b)[0]),
        case("created 301 s ago", "stale", now=CREATED + 301),
        case("created 301 s ahead of our clock", "future", now=CREATED - 301),
        case("no Signature", "missing", headers=replace(headers, "Signature", None)),
        case("no Signature-Input", "missing", headers=replace(headers, "Signature-Input", None)),
        case("no Content-Digest", "missing", headers=replace(headers, "Content-Digest", None)),
        case(
            "Signature for another label only",
            "missing",
            headers=replace(headers, "Signature", "sig2=:" + signature_b64 + ":"),
        ),
        case("@target-uri not covered", "not-covered", headers=signed(a, components=("@method", "content-digest"))[0]),
        case("@method not covered", "not-covered", headers=signed(a, components=("@target-uri", "content-digest"))[0]),
        case("content-digest not covered", "not-covered", headers=signed(a, components=("@method", "@target-uri"))[0]),
        case("no nonce parameter", "not-covered", headers=signed(a, sig_params=no_nonce)[0]),
        case("alg is not ed25519", "profile", headers=signed(a, sig_params=params(a.key_id, alg="rsa-pss-sha512"))[0]),
        case("nonce of 8 bytes", "profile", headers=signed(a, sig_params=params(a.key_id, nonce=short_nonce))[0]),
        case("keyid not a Shulian key id", "profile", headers=signed(a, key_id="test-key-ed25519")[0]),
        case("Signature-Input junk", "malformed", headers=replace(headers, "Signature-Input", "sig1=(")),
        case(
            "Signature-Input with a non-ASCII byte",
            "malformed",
            headers=replace(headers, "Signature-Input", 'sig1=("@método")'),
        ),
        case("Signature not base64", "malformed", headers=replace(headers, "Signature", "sig1=:not base64!:")),
        case("Signature a string", "malformed", headers=replace(headers, "Signature", f'sig1="{signature_b64}"')),
        case(
            "Signature-Input member not an inner list",
            "malformed",
            headers=replace(headers, "Signature-Input", 'sig1="@method"'),
        ),
        case(
            "label sig1 twice in Signature-Input",
            "malformed",
            headers=replace(
                headers, "Signature-Input", get(headers, "Signature-Input") + ", " + get(headers, "Signature-Input")
            ),
        ),
        case(
            "label sig1 twice in Signature (two field lines)",
            "malformed",
            headers=[*headers, ["Signature", get(headers, "Signature")]],
        ),
        case(
            "covered content-type absent from the request",
            "malformed",
            headers=replace(headers, "Content-Type", None),
        ),
    ]
    return {
        "desc": "The Shulian profile of RFC 9421 (DESIGN.md §4): verify_request(method, url, headers, body, "
        "resolve_key over 'keys', now, max_skew=300). 'ok': accepted, giving key_id, nonce and request_hash "
        "(hex SHA-256 of the signature base followed by the raw signature); otherwise the rejection reason "
        "(api.httpsig.Reason). 'sign': sign_request with that seed, created and nonce gives exactly "
        "'expect_headers' over 'signature_base'. Bodies are UTF-8. Key seeds are SHA-256 of "
        "'shulian rfc9421 vector key A' (and B, which is not in 'keys').",
        "keys": [{"key_id": a.key_id, "public_key": b64(a.public)}],
        "sign": {
            "desc": "POST with a JSON body, covering @method, @target-uri, content-digest, content-type",
            "method": "POST",
            "url": URL,
            "headers": [["Content-Type", "application/json"]],
            "body": BODY,
            "seed": b64(a.key.encode()),
            "key_id": a.key_id,
            "created": CREATED,
            "nonce": NONCE,
            "signature_base": base,
            "expect_headers": {n: v for n, v in headers if n != "Content-Type"},
        },
        "cases": cases,
    }


FILES = {
    "rfc9421_ed25519.json": rfc9421_ed25519,
    "rfc9421_content_digest.json": rfc9421_content_digest,
    "rfc9421_shulian.json": rfc9421_shulian,
}


def render() -> dict[str, str]:
    return {name: json.dumps(make(), ensure_ascii=False, indent=1) + "\n" for name, make in FILES.items()}


def stale() -> list[str]:
    """The vector files that differ from what this script writes."""
    return [n for n, t in render().items() if not (VECTORS / n).exists() or (VECTORS / n).read_text("utf-8") != t]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        names = stale()
        for name in names:
            print(f"stale: tests/vectors/{name}")
        return 1 if names else 0
    for name, text in render().items():
        (VECTORS / name).write_text(text, "utf-8")
        print(f"wrote tests/vectors/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
