"""The §9 transparency endpoints and signed appends, through a real uvicorn server on loopback."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import httpx
import nacl.signing
import pytest

from api.node import identity_body
from keys.keystore import StoredKey, load_key
from ledger.envelope import sign_envelope
from ledger.note import VerifierKey, verify_checkpoint
from ledger.timefmt import format_ts, now
from ledger.tree import leaf_hash, verify_consistency, verify_inclusion
from tests.api.conftest import Server


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def log_key(server: Server) -> VerifierKey:
    r = httpx.get(server.url + "/v1/log/key")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return VerifierKey.parse(r.text)


def checkpoint(server: Server) -> tuple[str, int, bytes]:
    r = httpx.get(server.url + "/v1/checkpoint")
    assert r.status_code == 200
    cp = verify_checkpoint(r.text, log_key(server))
    return r.text, cp.size, cp.root


def admin(server: Server) -> nacl.signing.SigningKey:
    secret = server.env["SHULIAN_PASSPHRASE"].encode()  # explicit: never leak into this process's environment
    return load_key(server.home / "keys" / "admin.json", "admin", secret).signing


def assert_problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["detail"] and body["title"]
    return dict(body)


def test_log_key_and_checkpoint_verify(server: Server) -> None:
    vkey = log_key(server)
    assert vkey.name == "test.example.gov.cn/shulian"
    _, size, _ = checkpoint(server)
    assert size > 200  # genesis, service, the demo city


def test_append_then_prove_inclusion_and_consistency(server: Server) -> None:
    _, size_before, root_before = checkpoint(server)
    citizen = StoredKey.generate("c", x25519=True)
    leaf = sign_envelope(
        admin(server), "identity.register", identity_body(citizen, "citizen", "市民X", subject="sub:" + "ab" * 32)
    )
    r = httpx.post(server.url + "/v1/entries", content=leaf, headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    out = r.json()
    cp = verify_checkpoint(out["checkpoint"], log_key(server))
    assert cp.size == out["tree_size"] and out["seq"] < cp.size
    proof = [base64.b64decode(h) for h in out["inclusion"]]
    verify_inclusion(out["seq"], cp.size, leaf_hash(leaf), proof, cp.root)

    r = httpx.get(server.url + "/v1/proof/inclusion", params={"hash": b64url(leaf_hash(leaf))})
    assert r.status_code == 200
    got = r.json()
    assert got["seq"] == out["seq"]
    _, size_now, root_now = checkpoint(server)
    assert got["tree_size"] == size_now
    verify_inclusion(got["seq"], size_now, leaf_hash(leaf), [base64.b64decode(h) for h in got["hashes"]], root_now)

    r = httpx.get(server.url + "/v1/proof/consistency", params={"first": size_before, "second": size_now})
    assert r.status_code == 200
    hashes = [base64.b64decode(h) for h in r.json()["hashes"]]
    verify_consistency(size_before, size_now, root_before, root_now, hashes)
    r = httpx.get(server.url + "/v1/proof/consistency", params={"first": size_now, "second": size_now})
    assert r.json()["hashes"] == []


def test_inclusion_at_an_older_size(server: Server) -> None:
    _, size, _ = checkpoint(server)
    # the genesis entry is in every tree; prove it in the tree of size 1 and of size 2
    r = httpx.get(server.url + "/v1/proof/consistency", params={"first": 1, "second": size})
    assert r.status_code == 200
    for m in (1, 2, size):
        r = httpx.get(server.url + "/v1/proof/inclusion", params={"hash": b64url(bytes(32)), "size": m})
        assert_problem(r, 404)


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/proof/inclusion", {"hash": "not base64!"}, 400),
        ("/v1/proof/inclusion", {"hash": b64url(bytes(31))}, 400),
        ("/v1/proof/inclusion", {"hash": b64url(bytes(32)) + "AAAA"}, 400),
        ("/v1/proof/inclusion", {"hash": b64url(bytes(32)), "size": 0}, 400),
        ("/v1/proof/inclusion", {"hash": b64url(bytes(32)), "size": 10**9}, 400),
        ("/v1/proof/inclusion", {"hash": b64url(bytes(32)), "size": "x"}, 400),
        ("/v1/proof/inclusion", {}, 400),
        ("/v1/proof/consistency", {"first": 0, "second": 1}, 400),
        ("/v1/proof/consistency", {"first": 3, "second": 2}, 400),
        ("/v1/proof/consistency", {"first": 1, "second": 10**9}, 400),
        ("/v1/proof/consistency", {"first": "a", "second": 2}, 400),
    ],
)
def test_bad_proof_queries_are_problems(server: Server, path: str, params: dict[str, object], status: int) -> None:
    assert_problem(httpx.get(server.url + path, params=params), status)


def _post(server: Server, body: bytes) -> httpx.Response:
    return httpx.post(server.url + "/v1/entries", content=body, headers={"content-type": "application/json"})


def test_bad_appends_are_refused_and_change_nothing(server: Server) -> None:
    _, size, root = checkpoint(server)
    adm = admin(server)
    k = StoredKey.generate("d", x25519=True)
    good = sign_envelope(adm, "identity.register", identity_body(k, "department", "测试局"))
    value = json.loads(good)
    # not canonical: spaces
    assert_problem(_post(server, json.dumps(value).encode()), 422)
    # bad signature
    bad_sig = dict(value, sig=base64.b64encode(bytes(64)).decode())
    assert_problem(_post(server, json.dumps(bad_sig, separators=(",", ":"), sort_keys=True).encode()), 422)
    # unknown key
    stranger = nacl.signing.SigningKey.generate()
    assert_problem(
        _post(server, sign_envelope(stranger, "identity.register", identity_body(k, "department", "x"))), 403
    )
    # wrong type
    assert_problem(_post(server, sign_envelope(adm, "identity.explode", {})), 422)
    # a department may not register keys
    secret = server.env["SHULIAN_PASSPHRASE"].encode()
    dept = load_key(server.home / "keys" / "demo.json", "dept-gaj", secret).signing
    assert_problem(_post(server, sign_envelope(dept, "identity.register", identity_body(k, "department", "z"))), 403)
    # not JSON, empty, too large
    assert_problem(_post(server, b"{"), 422)
    assert_problem(_post(server, b""), 422)
    assert_problem(_post(server, b"[" + b"1," * 40000 + b"1]"), 413)
    # time far from the ledger's
    old = format_ts(now() - timedelta(hours=1))
    assert_problem(
        _post(server, sign_envelope(adm, "identity.register", identity_body(k, "department", "y"), ts=old)), 422
    )
    # nothing above changed the ledger
    _, size_after, root_after = checkpoint(server)
    assert (size_after, root_after) == (size, root)
    # the good one goes in once; its replay is a conflict
    assert _post(server, good).status_code == 201
    assert_problem(_post(server, good), 409)


def test_unknown_route_is_a_problem(server: Server) -> None:
    assert_problem(httpx.get(server.url + "/v1/nothing"), 404)
    assert_problem(httpx.delete(server.url + "/v1/checkpoint"), 405)


def test_openapi_lists_the_endpoints(server: Server) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in ("/v1/log/key", "/v1/checkpoint", "/v1/proof/inclusion", "/v1/proof/consistency", "/v1/entries"):
        assert path in spec["paths"]
