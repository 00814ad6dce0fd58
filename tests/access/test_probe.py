"""Every operation in the OpenAPI document, probed unsigned and with junk signatures over a real server.

Only the public transparency endpoints (DESIGN §9) may answer an unsigned request with data; every
other operation answers each probe with a 4xx problem document and nothing else, never a 5xx, and the
ledger does not change. The list of operations comes from the served ``/openapi.json``, so a route
added later is probed too.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable

import httpx

from api.httpsig import sign_request
from keys.keystore import StoredKey
from ledger.tree import leaf_hash
from tests.access.signing import assert_problem, signed_headers
from tests.access.world import World

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),  # aggregate counts only (README, Operations); SHULIAN_METRICS_TOKEN can close it
    ("GET", "/v1/log/key"),
    ("GET", "/v1/checkpoint"),
    ("GET", "/v1/proof/inclusion"),
    ("GET", "/v1/proof/consistency"),
}
# Query parameters that make each operation a plausible request, so the probe reaches authentication.
QUERIES: dict[str, dict[str, str]] = {
    "/v1/proof/inclusion": {"size": "1"},  # and the hash of the genesis entry
    "/v1/proof/consistency": {"first": "1", "second": "2"},
    "/v1/entries": {"after": "0", "limit": "5"},
    "/v1/usage": {"after": "0", "limit": "5"},
    "/v1/records": {"dataset": "mzj.dibao"},
}
JSON_BODY = b'{"dataset":"mzj.dibao","record":"mzj-a","fields":["name"],"purpose":"x"}'

Probe = Callable[[httpx.Client, str, str, dict[str, str]], httpx.Response]


def _send(
    client: httpx.Client, method: str, path: str, query: dict[str, str], body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return client.request(method, path, params=query, content=body, headers=headers)


def probes(world: World) -> dict[str, Probe]:
    """Named ways to send a request that must not be taken; each gets (client, method, path, query)."""
    auditor_key = world.auditor.key
    assert auditor_key is not None
    stranger = StoredKey.generate("stranger", x25519=True, role="department")  # never registered

    def with_headers(headers: dict[str, str], body: bytes = JSON_BODY) -> Probe:
        return lambda c, m, p, q: _send(c, m, p, q, body, headers)

    def signed_then(
        alter: Callable[[dict[str, str]], dict[str, str]],
        key: StoredKey = auditor_key,
        body: bytes = JSON_BODY,
        **kw: int,
    ) -> Probe:
        def probe(c: httpx.Client, m: str, p: str, q: dict[str, str]) -> httpx.Response:
            request, headers = signed_headers(c, key, m, p, body, params=q, **kw)  # type: ignore[arg-type]
            request.headers.update(alter(headers))
            return c.send(request)

        return probe

    def random_signature(h: dict[str, str]) -> dict[str, str]:
        return h | {"Signature": f"sig1=:{base64.b64encode(os.urandom(64)).decode()}:"}

    def for_other_path(c: httpx.Client, m: str, p: str, q: dict[str, str]) -> httpx.Response:
        _, headers = signed_headers(c, auditor_key, "GET", "/v1/me")
        return _send(c, m, p, q, b"", headers)

    def for_other_body(c: httpx.Client, m: str, p: str, q: dict[str, str]) -> httpx.Response:
        _, headers = signed_headers(c, auditor_key, m, p, b"{}", params=q)
        return _send(c, m, p, q, JSON_BODY, headers | {"content-type": "application/json"})

    def other_key_same_id(c: httpx.Client, m: str, p: str, q: dict[str, str]) -> httpx.Response:
        request = c.build_request(m, p, params=q, content=JSON_BODY)
        forged = sign_request(
            method=m, url=str(request.url), headers=request.headers, body=JSON_BODY,
            key=stranger.signing, key_id=stranger.key_id,
        )  # fmt: skip
        # claim the auditor's key id while signing with another key
        forged["Signature-Input"] = forged["Signature-Input"].replace(stranger.key_id, auditor_key.key_id)
        request.headers.update(forged)
        return c.send(request)

    return {
        "unsigned, empty": with_headers({}, b""),
        "unsigned, JSON": with_headers({"content-type": "application/json"}),
        "unsigned, binary junk": with_headers({}, os.urandom(300)),
        "junk header values": with_headers(
            {"Signature-Input": "garbage", "Signature": "garbage", "Content-Digest": "x"}
        ),
        "junk structured fields": with_headers(
            {"Signature-Input": 'sig1=("@method");created=1;keyid="x"', "Signature": "sig1=:AAAA:"}
        ),
        "only Signature": with_headers({"Signature": f"sig1=:{base64.b64encode(os.urandom(64)).decode()}:"}),
        "random signature bytes": signed_then(random_signature),
        "signature dropped from input": signed_then(lambda h: h | {"Signature-Input": 'sig1=("@method")'}),
        "unknown key": signed_then(lambda h: h, key=stranger),
        "another key under a known id": other_key_same_id,
        "signed for another path": for_other_path,
        "stale": signed_then(lambda h: h, created=int(time.time()) - 3600),
        "future": signed_then(lambda h: h, created=int(time.time()) + 3600),
        "wrong content digest": signed_then(
            lambda h: h | {"Content-Digest": "sha-256=:" + base64.b64encode(bytes(32)).decode() + ":"}
        ),
        "signed for another body": for_other_body,
    }


def test_every_operation_refuses_unsigned_and_junk(world: World, http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    operations = [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]
    assert len(operations) >= 20 and ("POST", "/v1/access/requests") in operations
    genesis = base64.urlsafe_b64encode(leaf_hash(world.leaves()[0])).decode().rstrip("=")
    queries = QUERIES | {"/v1/proof/inclusion": QUERIES["/v1/proof/inclusion"] | {"hash": genesis}}
    before = world.size()
    secrets_seen = [c.subject for c in world.citizens.values()] + [c.id_number for c in world.citizens.values()]
    answered_unsigned: set[tuple[str, str]] = set()
    for method, path in operations:
        target = path.replace("{seq}", "3")
        query = queries.get(path, {})
        for name, probe in probes(world).items():
            r = probe(http, method, target, query)
            where = f"{method} {path} [{name}]"
            assert r.status_code < 500, f"{where}: {r.status_code} {r.text[:200]}"
            if (method, path) in PUBLIC:
                if r.status_code < 400:
                    answered_unsigned.add((method, path))
                continue
            try:
                assert_problem(r)
            except AssertionError as exc:
                raise AssertionError(f"{where}: {exc}") from None
            assert not any(s in r.text for s in secrets_seen), f"{where}: leaks a subject or an ID number"
    assert answered_unsigned == PUBLIC, "the public endpoints answer; nothing else does"
    assert world.size() == before


def test_the_probes_would_pass_if_signed_properly(world: World, http: httpx.Client) -> None:
    """Control: the auditor's properly signed request on the same operations is answered with data."""
    auditor_key = world.auditor.key
    assert auditor_key is not None
    for path, query in [("/v1/me", {}), ("/v1/entries/3", {}), ("/v1/entries", QUERIES["/v1/entries"])]:
        request, headers = signed_headers(http, auditor_key, "GET", path, params=query)
        request.headers.update(headers)
        r = http.send(request)
        assert r.status_code == 200, (path, r.text)
