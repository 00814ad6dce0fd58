"""Rate limits (429 with Retry-After) and request size limits (413), with problem bodies, on a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.httpsig import sign_request
from api.limits import TokenBuckets
from keys.keystore import load_key
from tests.ops.conftest import PASSPHRASE, Live, serve

BODY_LIMIT = 4096


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Small limits: 3 tokens a key, 4 an address, refilled at one every 20 s; bodies up to 4 KiB."""
    yield from serve(
        tmp_path_factory.mktemp("limits"),
        rate_key_per_s="0.05",
        rate_key_burst="3",
        rate_ip_per_s="0.05",
        rate_ip_burst="4",
        max_body_bytes=str(BODY_LIMIT),
    )


def client_from(address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (any 127.x.y.z): its own address bucket."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60)


def assert_problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    assert doc["status"] == status and doc["type"] == "about:blank" and doc["detail"]
    assert doc["request_id"] == r.headers["x-request-id"]
    return dict(doc)


def test_token_buckets() -> None:
    at = [0.0]
    buckets = TokenBuckets(2.0, 3, clock=lambda: at[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # empty: one token back in 1/2 s
    assert buckets.take("b") == 0.0  # another name, its own bucket
    assert buckets.take("a", peek=True) == pytest.approx(0.5)
    at[0] = 0.5
    assert buckets.take("a", peek=True) == 0.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    at[0] = 100.0  # refilled up to the burst, no more
    assert [buckets.take("a") for _ in range(4)][-1] > 0
    assert TokenBuckets(0, 1).take("x") == 0.0  # rate 0: no limit


def test_address_limit(strict: Live) -> None:
    with client_from("127.0.0.2") as http:
        for _ in range(10):
            assert http.get(strict.url + "/healthz").status_code == 200  # operations routes are never limited
        for _ in range(4):
            assert http.get(strict.url + "/v1/checkpoint").status_code == 200
        r = http.get(strict.url + "/v1/checkpoint", headers={"X-Request-ID": "ops-429"})
        doc = assert_problem(r, 429)
        assert doc["request_id"] == "ops-429"
        assert 1 <= int(r.headers["retry-after"]) <= 20
        assert "127.0.0.2" in str(doc["detail"])
    with client_from("127.0.0.3") as other:  # another address is not affected
        assert other.get(strict.url + "/v1/checkpoint").status_code == 200


def signed_me(http: httpx.Client, url: str, key_path: Path) -> httpx.Response:
    key = load_key(key_path, key_path.stem, PASSPHRASE)
    headers = sign_request(method="GET", url=url + "/v1/me", headers={}, body=b"", key=key.signing, key_id=key.key_id)
    return http.get(url + "/v1/me", headers=headers)


def test_key_limit(strict: Live) -> None:
    admin = strict.home / "keys" / "admin.json"
    service = strict.home / "keys" / "service.json"
    with client_from("127.0.0.4") as http:
        for _ in range(3):
            r = signed_me(http, strict.url, admin)
            assert r.status_code == 200, r.text
        r = signed_me(http, strict.url, admin)
        doc = assert_problem(r, 429)
        assert "over its limit" in str(doc["detail"])
        assert int(r.headers["retry-after"]) >= 1
        assert signed_me(http, strict.url, service).status_code == 200  # another key: its own bucket
        # signed requests are charged to their key, not their address: the address still has its 4
        for _ in range(4):
            assert http.get(strict.url + "/v1/checkpoint").status_code == 200


def test_failed_signatures_spend_the_address(strict: Live) -> None:
    junk = {"Signature-Input": 'sig1=("@method");created=1;keyid="00";alg="ed25519"', "Signature": "sig1=:AAAA:"}
    with client_from("127.0.0.5") as http:
        for _ in range(4):
            assert http.get(strict.url + "/v1/me", headers=junk).status_code == 401
        assert_problem(http.get(strict.url + "/v1/me", headers=junk), 429)
        assert_problem(http.get(strict.url + "/v1/checkpoint"), 429)


def test_body_limits(strict: Live) -> None:
    big = b"{" + b" " * BODY_LIMIT + b"}"
    with client_from("127.0.0.6") as http:
        r = http.post(strict.url + "/v1/entries", content=big, headers={"content-type": "application/json"})
        doc = assert_problem(r, 413)
        assert f"more than {BODY_LIMIT}" in str(doc["detail"])

        def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it streams
            for _ in range(8):
                yield b" " * 1024

        r = http.post(strict.url + "/v1/entries", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in r.request.headers
        doc = assert_problem(r, 413)
        assert f"more than {BODY_LIMIT} bytes" in str(doc["detail"])
        r = http.post(strict.url + "/v1/entries", content=b"{}", headers={"content-type": "application/json"})
        assert r.status_code == 422  # within the limit: the route's own answer (not an envelope)


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Bodies up to 3 MiB: above the 1 MiB default."""
    yield from serve(tmp_path_factory.mktemp("roomy"), max_body_bytes=str(3 << 20))


def test_a_raised_body_limit_holds_for_signed_requests(roomy: Live) -> None:
    """A signed body over the 1 MiB default but under the operator's limit reaches the route (not 413)."""
    key = load_key(roomy.home / "keys" / "admin.json", "admin", PASSPHRASE)
    url = roomy.url + "/v1/access/requests"
    with httpx.Client(timeout=60) as http:
        for size, refused in ((3 << 19, False), ((3 << 20) + 1, True)):
            body = b'{"pad":"' + b"x" * size + b'"}'
            headers = {"content-type": "application/json"}
            headers |= sign_request(
                method="POST", url=url, headers=headers, body=body, key=key.signing, key_id=key.key_id
            )
            r = http.post(url, content=body, headers=headers)
            if refused:
                assert_problem(r, 413)
            else:
                assert r.status_code in (400, 403, 422), r.text  # the route's own answer: an admin may not ask
